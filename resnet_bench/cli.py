"""The `resnet-bench` command: parse, call the library once, render. Nothing below this module prints or exits."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from resnet_bench import __version__
from resnet_bench.errors import BadInputError

FORMATS = ("table", "json", "csv")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and the exit code 2 that argparse already uses)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _format_arg(value: str) -> str:
    if value not in FORMATS:
        raise argparse.ArgumentTypeError(f"--format {value!r} is not accepted; use one of: {', '.join(FORMATS)}")
    return value


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", type=_format_arg, default="table", metavar="{table,json,csv}",
        help="table: rich table; json: one JSON document on stdout; csv: rows on stdout",
    )


def _positive_int(flag: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            raise argparse.ArgumentTypeError(f"{flag} {value!r} is not accepted; it must be an integer >= 1")
        return number

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    from resnet_bench.profiling import DTYPES

    parser = _Parser(prog="resnet-bench", description="Accuracy against compute for residual networks.")
    parser.add_argument("--version", action="version", version=f"resnet-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    models = sub.add_parser("models", help="list the presets with parameters, GFLOPs and published errors")
    models.add_argument("--family", help="only this family (torchvision, cifar-resnet, wrn, ...)")
    _add_format(models)
    models.set_defaults(func=_cmd_models)

    profile = sub.add_parser("profile", help="cost of one or more models, side by side")
    profile.add_argument(
        "models", nargs="+", metavar="MODEL",
        help="a preset name, a one-line spec (block=bottleneck,layers=3-4-6-3) or a path to a JSON spec",
    )
    profile.add_argument("--by-stage", action="store_true", help="also the cost of the stem, each stage and the head")
    profile.add_argument(
        "--input-size", type=_positive_int("--input-size"), metavar="PIXELS",
        help="input height = width (default: 224 for the imagenet stem, 32 for the cifar stem)",
    )
    profile.add_argument(
        "--in-channels", type=_positive_int("--in-channels"), metavar="N", help="input channels (default: the spec's)"
    )
    speed = profile.add_argument_group("measured speed")
    speed.add_argument("--latency", action="store_true", help="measure latency (batch 1) and throughput")
    speed.add_argument("--train", action="store_true", help="also measure training throughput (implies --latency)")
    speed.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    speed.add_argument("--batch-size", type=_positive_int("--batch-size"), default=64, help="for throughput (64)")
    speed.add_argument("--dtype", choices=DTYPES, default="float32", help="float32, or an autocast dtype")
    speed.add_argument("--runs", type=_positive_int("--runs"), default=10, help="timed runs per figure (10)")
    _add_format(profile)
    profile.set_defaults(func=_cmd_profile)

    train = sub.add_parser("train", help="train one candidate and print its metrics")
    train.add_argument("model", metavar="MODEL", help="a preset name, a one-line spec or a path to a JSON spec")
    train.add_argument("--dataset", default="fashion-mnist-mini",
                       help="fashion-mnist, fashion-mnist-mini (default, ships with the package), cifar10, "
                            "cifar100 or imagefolder:PATH")
    train.add_argument("--recipe", default="fast", help="a named recipe: fast (default) or he2015")
    train.add_argument("--epochs", type=_positive_int("--epochs"), help="override the recipe's epochs")
    train.add_argument("--batch-size", type=_positive_int("--batch-size"), help="override the recipe's batch size")
    train.add_argument("--lr", type=float, help="override the recipe's learning rate (per 128 images of batch)")
    train.add_argument("--seed", type=int, default=0, help="weights, validation split, shuffling (0)")
    train.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda or cuda:N")
    train.add_argument("--val-size", type=_positive_int("--val-size"), default=2000,
                       help="validation images carved from the training set (2000)")
    train.add_argument("--image-size", type=_positive_int("--image-size"), default=32,
                       help="imagefolder only: images are decoded once at this size (32)")
    train.add_argument("--test-curve", action="store_true", help="also measure the test error after every epoch")
    train.add_argument("--save", metavar="PATH", help="write a checkpoint (weights, spec, recipe, metrics)")
    _add_format(train)
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="re-measure a saved model")
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _add_format(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)
    return parser


def _cmd_models(args: argparse.Namespace) -> None:
    from resnet_bench import presets
    from resnet_bench.preset_costs import preset_costs
    from resnet_bench.published import published_for

    families = sorted({presets.family(n) for n in presets.names()})
    if args.family is not None and args.family not in families:
        raise BadInputError(f"--family {args.family!r} is not accepted; use one of: {', '.join(families)}")
    costs = preset_costs()
    rows = []
    for name in presets.names(args.family):
        published = published_for(name)
        row = {**costs[name], "spec": presets.get(name).format()}
        first = published[0] if published else None
        row["published_error_pct"] = first.error_pct if first else None
        row["published_dataset"] = first.dataset if first else None
        row["published_source"] = f"{first.source}, {first.location}" if first else None
        rows.append(row)
    if args.format != "table":
        _print_records(rows, args.format)
        return
    from rich.table import Table

    table = Table(
        title="presets", caption="GFLOPs: conv + linear, 1 multiply-add = 1 FLOP, at the native input size. "
        "Sources: --format json or csv",
    )
    for column in ("name", "params", "GFLOPs", "input", "error %", "data set"):
        table.add_column(column, justify="left" if column in ("name", "data set") else "right", no_wrap=True)
    family = None
    for r in rows:
        if r["family"] != family:  # one section per family, headed by its name
            family = r["family"]
            if table.row_count:
                table.add_section()
            table.add_row(f"[bold]{family}[/bold]")
        error = f"{r['published_error_pct']:g}" if r["published_dataset"] else ""
        table.add_row(
            r["name"], f"{r['params'] / 1e6:.2f}M", f"{r['gflops']:.3f}", str(r["input_size"]), error,
            r["published_dataset"] or "",
        )
    _console().print(table)


def _cmd_profile(args: argparse.Namespace) -> None:
    from resnet_bench.profiling import profile

    speed = args.latency or args.train
    results = []
    with _status(f"profiling {len(args.models)} model(s)"):
        for model in args.models:
            results.append(
                profile(
                    model, input_size=args.input_size, in_channels=args.in_channels, speed=speed,
                    device=args.device, dtype=args.dtype, batch_size=args.batch_size, runs=args.runs, train=args.train,
                )
            )
    if args.format == "json":
        _print_records([{**p.to_row(), "stages": p.stage_rows()} for p in results], "json")
    elif args.format == "csv":
        _print_records([r for p in results for r in p.stage_rows()] if args.by_stage else
                       [p.to_row() for p in results], "csv")
    else:
        _print_profiles(results, args.by_stage)


def _cmd_train(args: argparse.Namespace) -> None:
    import torch

    from resnet_bench.checkpoint import save_checkpoint
    from resnet_bench.data import load_dataset, split
    from resnet_bench.models import build_model
    from resnet_bench.presets import resolve
    from resnet_bench.train import get_recipe, resolve_device, spec_for_data, train

    if args.lr is not None and args.lr < 0:
        raise BadInputError(f"--lr {args.lr} is not accepted; the learning rate must be >= 0")
    recipe = get_recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    device = resolve_device(args.device)
    base = resolve(args.model)
    data = split(load_dataset(args.dataset, image_size=args.image_size), val_size=args.val_size, seed=args.seed)
    spec = spec_for_data(base, data)
    torch.manual_seed(args.seed)
    model = build_model(spec)
    with _TrainingProgress(recipe.epochs) as progress:
        result = train(model, data, recipe, device, callback=progress.epoch_done, on_batch=progress.batch_done,
                       test_curve=args.test_curve)
    if args.save:
        save_checkpoint(args.save, model, spec, result, dataset=data.dataset, val_size=data.val_size,
                        split_seed=data.seed, image_size=data.image_size)
    summary = {"model": args.model, "spec": spec.format(), "dataset": data.dataset, **result.to_row()}
    if args.format == "json":
        _print_records([{**summary, "history": result.history_rows()}], "json")
    elif args.format == "csv":
        _print_records([{"model": args.model, **row} for row in result.history_rows()], "csv")
    else:
        _print_training(summary, result.history_rows())


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from resnet_bench.checkpoint import load_checkpoint
    from resnet_bench.data import load_dataset, split
    from resnet_bench.models import build_model
    from resnet_bench.train import accuracy, resolve_device

    checkpoint = load_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    model = build_model(checkpoint.spec)
    model.load_state_dict(checkpoint.state_dict, strict=True)
    model.to(device)
    data = split(load_dataset(checkpoint.dataset, image_size=checkpoint.image_size), val_size=checkpoint.val_size,
                 seed=checkpoint.split_seed)
    row = {
        "checkpoint": args.checkpoint, "spec": checkpoint.spec.format(), "dataset": checkpoint.dataset,
        "val_accuracy": accuracy(model, data.val, data, device),
        "test_accuracy": accuracy(model, data.test, data, device),
        "saved_val_accuracy": checkpoint.metrics["val_accuracy"],
        "saved_test_accuracy": checkpoint.metrics["test_accuracy"], "device": str(device),
    }
    if args.format != "table":
        _print_records([row], args.format)
        return
    from rich.table import Table

    table = Table(title=f"evaluate {args.checkpoint}")
    for column in ("", "now", "when saved"):
        table.add_column(column, justify="left" if not column else "right")
    for key in ("val_accuracy", "test_accuracy"):
        table.add_row(key.replace("_", " "), f"{row[key]:.2%}", f"{row['saved_' + key]:.2%}")
    _console().print(table)


def _print_training(summary: dict[str, Any], history: list[dict[str, Any]]) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"{summary['model']} on {summary['dataset']}")
    for column in ("epoch", "train loss", "train error", "val accuracy", "test error", "lr", "seconds"):
        table.add_column(column, justify="right")
    for h in history:
        test = "" if h["test_error"] is None else f"{h['test_error']:.2%}"
        table.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['train_error']:.2%}",
                      f"{h['val_accuracy']:.2%}", test, f"{h['lr']:.4f}", f"{h['seconds']:.1f}")
    console.print(table)
    console.print(
        f"validation accuracy {summary['val_accuracy']:.2%}, test accuracy {summary['test_accuracy']:.2%} "
        f"(test is reported, never used for selection); {summary['epochs']} epochs, "
        f"{summary['train_seconds']:.1f} s of training, {summary['images_per_second']:,.0f} images/s on "
        f"{summary['device']} ({summary['threads']} threads)"
    )


class _TrainingProgress:
    """Epochs and batches with the running loss on stderr; the loss is read a few times a second at most."""

    REFRESH_SECONDS = 0.25

    def __init__(self, epochs: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(), console=self.console, disable=not self.console.is_terminal,
        )
        self.epochs = self.progress.add_task("epochs", total=epochs, loss="")
        self.batches = self.progress.add_task("batches", total=None, loss="")
        self.last_read = 0.0

    def __enter__(self) -> _TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def batch_done(self, epoch: int, step: int, steps: int, loss: Any) -> None:
        if self.progress.disable:
            return
        now = time.monotonic()
        if now - self.last_read >= self.REFRESH_SECONDS or step == steps:
            self.last_read = now
            self.progress.update(self.batches, completed=step, total=steps, description=f"epoch {epoch}",
                                 loss=f"loss {loss.item():.4f}")  # one sync, a few times a second

    def epoch_done(self, epoch: int, metrics: Any) -> bool:
        self.progress.update(self.epochs, completed=epoch, loss=f"val {metrics.val_accuracy:.2%}")
        return False


def _print_profiles(results: list[Any], by_stage: bool) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title="cost", caption="GFLOPs: fvcore, 1 multiply-add = 1 FLOP, conv + linear; then all it counts")
    table.add_column("")
    for p in results:
        table.add_column(p.model, justify="right", overflow="fold")
    lines = [
        ("input", lambda p: f"{p.cost.in_channels}x{p.cost.input_size}x{p.cost.input_size}"),
        ("params", lambda p: f"{p.cost.params:,}"),
        ("GFLOPs", lambda p: f"{p.cost.gflops:.3f}"),
        ("GFLOPs, all", lambda p: f"{p.cost.gflops_total:.3f}"),
        ("activations", lambda p: f"{p.cost.activations / 1e6:.2f}M"),
    ]
    if any(p.speed for p in results):
        lines += [
            ("device", lambda p: p.speed.device),
            ("dtype", lambda p: p.speed.dtype),
            ("CPU threads", lambda p: str(p.speed.threads)),
            ("latency, batch 1, ms (IQR)", lambda p: f"{p.speed.latency_ms:.2f} ({p.speed.latency_iqr_ms:.2f})"),
            (f"img/s, batch {results[0].speed.batch_size}", lambda p: f"{p.speed.throughput:,.0f}"),
        ]
        if any(p.speed.train_throughput for p in results):
            lines.append(("training img/s", lambda p: f"{p.speed.train_throughput:,.0f}"))
        if any(p.speed.peak_memory_mb for p in results):
            lines.append(("peak memory, MiB", lambda p: f"{p.speed.peak_memory_mb:,.0f}"))
    for label, cell in lines:
        table.add_row(label, *(cell(p) for p in results))
    console.print(table)
    if by_stage:
        for p in results:
            stages = Table(title=f"{p.model} by stage")
            for column in ("part", "output", "params", "GFLOPs", "activations"):
                stages.add_column(column, justify="left" if column == "part" else "right")
            for s in p.cost.stages:
                stages.add_row(
                    s.name, "x".join(map(str, s.output_shape)), f"{s.params:,}", f"{s.gflops:.3f}",
                    f"{s.activations / 1e6:.2f}M",
                )
            console.print(stages)


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


@contextlib.contextmanager
def _status(message: str) -> Iterator[None]:
    """A spinner on stderr while work runs (only when stderr is a terminal)."""
    from rich.console import Console

    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


def _print_records(rows: list[dict[str, Any]], fmt: str) -> None:
    """Rows as one JSON document or as CSV, on stdout."""
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        return EXIT_OK
    except BadInputError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"resnet-bench {args.command}: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (`| head`) left early: not an error of ours; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a failure, not bad input: exit 1, traceback only with --debug
        if args.debug:
            raise
        sys.stderr.write(f"resnet-bench {args.command}: failed: {type(exc).__name__}: {exc} (rerun with --debug)\n")
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
