"""The `resnet-bench` command: parse, call the library once, render. Nothing below this module prints or exits."""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
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
    train.add_argument("--recipe", default="fast",
                       help="a named recipe, fast (default) or he2015, or a recipe as a JSON object (as a trial stores it)")
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

    sweep = sub.add_parser("sweep", help="run (or resume) a study; no file: the quickstart study")
    sweep.add_argument("study_file", nargs="?", metavar="STUDY_FILE",
                       help="a study file (.toml), or a shipped study: quickstart (default), fashion_mnist, cifar10")
    sweep.add_argument("--n-trials", type=_positive_int("--n-trials"),
                       help="trained trials this command adds (default: the file's budget.n_trials)")
    sweep.add_argument("--timeout", type=float, metavar="MINUTES", help="stop starting trials after this long")
    sweep.add_argument("--storage", help="an Optuna storage URL (default: sqlite under --out/<study>/study.db)")
    sweep.add_argument("--study-name", help="the study's name in the storage (default: the file's name)")
    sweep.add_argument("--out", default="reports", help="folder of the default storage (reports)")
    sweep.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    sweep.add_argument("--workers", type=_positive_int("--workers"), default=1,
                       help="worker processes on this machine sharing the study (each pinned to a GPU if any)")
    sweep.add_argument("--threads", type=_positive_int("--threads"),
                       help="CPU threads per worker (default: the machine's cores divided among the workers)")
    sweep.add_argument("--heartbeat", type=_positive_int("--heartbeat"), default=30, metavar="SECONDS",
                       help="a worker silent for twice this long is presumed dead: its trial is retried (30)")
    sweep.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    sweep.add_argument("--dry-run", action="store_true", help="sample the space and measure costs; train nothing")
    sweep.add_argument("--dry-run-samples", type=_positive_int("--dry-run-samples"), default=100,
                       help="candidates the dry run samples (100)")
    _add_format(sweep)
    sweep.set_defaults(func=_cmd_sweep)

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


def _cmd_sweep(args: argparse.Namespace) -> None:
    from pathlib import Path

    from resnet_bench.search.config import load_study_file

    config = load_study_file(args.study_file)
    if args.timeout is not None and args.timeout <= 0:
        raise BadInputError(f"--timeout {args.timeout} is not accepted; it must be a number of minutes > 0")
    if args.dry_run:
        _sweep_dry_run(config, args)
        return
    import torch

    from resnet_bench.search.sweep import Sweep, default_storage, front, open_study, record_of

    storage = args.storage or default_storage(config, Path(args.out))
    state_dir = None if storage.startswith("sqlite:///") else Path(args.out) / (args.study_name or config.name) / "states"
    budget = args.n_trials or config.n_trials
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // args.workers))
    if args.workers > 1:
        # The parent makes the study (and enqueues the baselines) once; the workers join it.
        study = open_study(config, storage, args.study_name, heartbeat_seconds=args.heartbeat)
        summary = _run_workers(args, storage, budget, study)
    else:
        with _SweepProgress(budget, worker=args.worker_index) as progress:
            sweep = Sweep(config, storage=storage, study_name=args.study_name, device=args.device,
                          state_dir=state_dir, worker=args.worker_index, heartbeat_seconds=args.heartbeat,
                          on_trial_start=progress.trial_start, on_epoch=progress.epoch,
                          on_trial_end=progress.trial_end)
            summary = sweep.run(n_trials=args.n_trials, timeout_minutes=args.timeout)
        study = sweep.study
    rows = []
    for trial in front(study):
        record = record_of(trial)
        rows.append({"number": trial.number, "baseline": record.baseline, "spec": record.spec,
                     "val_accuracy": record.val_accuracy, "test_accuracy": record.test_accuracy,
                     "gflops": record.gflops, "params": record.params, "train_seconds": record.train_seconds})
    if args.format != "table":
        _print_records(rows, args.format)
        return
    from rich.table import Table

    objectives = ", ".join(f"{o.direction} {o.metric}" for o in config.objectives)
    table = Table(title=f"Pareto front of {summary.study_name} ({objectives})",
                  caption=f"{summary.trained} trained ({summary.failed} failed) and {summary.infeasible} infeasible "
                          f"in {summary.seconds:.0f} s, stopped by {summary.stopped}; storage {summary.storage}")
    for column in ("#", "network", "val acc", "test acc", "GFLOPs", "params"):
        table.add_column(column, justify="left" if column == "network" else "right", overflow="fold")
    for r in rows:
        name = f"[bold]{r['baseline']}[/bold]" if r["baseline"] else r["spec"]
        table.add_row(str(r["number"]), name, f"{r['val_accuracy']:.2%}", f"{r['test_accuracy']:.2%}",
                      f"{r['gflops']:.4f}", f"{r['params']:,}")
    _console().print(table)


def _run_workers(args: argparse.Namespace, storage: str, budget: int, study: Any) -> Any:
    """K worker processes of this command on one study; each gets its share of the trials, a GPU, and threads."""
    import subprocess

    import torch

    from resnet_bench.search.sweep import summarise_since

    study_name = study.study_name
    since = datetime.datetime.now()
    gpus = torch.cuda.device_count()
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    started = time.perf_counter()
    workers = []
    for i in range(args.workers):
        share = budget // args.workers + (i < budget % args.workers)
        if share == 0:
            continue
        command = [sys.executable, "-m", "resnet_bench", "sweep", *([args.study_file] if args.study_file else []),
                   "--storage", storage, "--study-name", study_name, "--n-trials", str(share), "--out", args.out,
                   "--device", args.device, "--threads", str(threads), "--heartbeat", str(args.heartbeat),
                   "--worker-index", str(i + 1), "--format", "json"]
        if args.timeout:
            command += ["--timeout", str(args.timeout)]
        env = dict(os.environ, RESNET_BENCH_WORKER=str(i + 1))
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    try:
        codes = [w.wait() for w in workers]
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them mark their trials failed
        for w in workers:
            w.wait()
        raise
    if any(code == EXIT_INTERRUPTED for code in codes):
        raise KeyboardInterrupt
    if any(codes):
        raise RuntimeError(f"{sum(1 for c in codes if c)} of {len(codes)} workers failed (exit codes {codes})")
    return summarise_since(study, since, storage, seconds=time.perf_counter() - started,
                           stopped=f"budget ({len(workers)} workers)")


def _sweep_dry_run(config: Any, args: argparse.Namespace) -> None:
    from resnet_bench.search.sweep import dry_run

    with _status(f"sampling {args.dry_run_samples} candidates of {config.name}"):
        result = dry_run(config, samples=args.dry_run_samples)
    row = dataclasses.asdict(result)
    row["feasible_fraction"] = result.feasible / result.samples
    if args.format != "table":
        _print_records([row], args.format)
        return
    valid = result.samples - result.invalid

    def span(r: Any, fmt: str) -> str:
        return f"{r[0]:{fmt}} to {r[1]:{fmt}}" if r else "none"

    console = _console()
    size = "continuous (a float range)" if result.space_size == float("inf") else f"{result.space_size:,.0f}"
    console.print(f"space of {config.name}: {size} candidates")
    console.print(f"{result.samples} sampled at random: {result.invalid} refused by the generator, "
                  f"{result.feasible} of {valid} valid inside the constraints ({row['feasible_fraction']:.0%})")
    console.print(f"GFLOPs {span(result.gflops_range, '.4f')}, params {span(result.params_range, ',')} "
                  f"(inside the constraints: GFLOPs {span(result.feasible_gflops_range, '.4f')}, "
                  f"params {span(result.feasible_params_range, ',')})")


class _StderrProgress:
    """Rich progress bars on stderr, shown only when stderr is a terminal; each task has a `note` field."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(), console=self.console,
            # Bars only on a terminal, and never from the workers of `sweep --workers` (their lines interleave).
            disable=not self.console.is_terminal or bool(os.environ.get("RESNET_BENCH_WORKER")),
        )

    def __enter__(self) -> Any:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


class _SweepProgress(_StderrProgress):
    """Trials done and to go, the current trial's epochs and the best validation accuracy, on stderr."""

    def __init__(self, trials: int, worker: int = 0) -> None:
        super().__init__()
        self.prefix = f"worker {worker}: " if worker else ""
        self.trials = self.progress.add_task("trials", total=trials, note="")
        self.epochs = self.progress.add_task("epochs", total=None, note="")
        self.best: float | None = None
        self.done = 0

    def trial_start(self, number: int, spec: str) -> None:
        self.progress.update(self.epochs, completed=0, description=f"trial {number}", note=spec[:60])

    def epoch(self, number: int, metrics: Any, epochs: int) -> None:
        self.progress.update(self.epochs, completed=metrics.epoch, total=epochs,
                             note=f"val {metrics.val_accuracy:.2%}")

    def trial_end(self, trial: Any) -> None:
        attrs = trial.user_attrs
        status = attrs.get("status", "failed")
        if status != "infeasible":
            self.done += 1
        if status == "trained":
            self.best = max(self.best or 0.0, attrs["val_accuracy"])
            line = f"val {attrs['val_accuracy']:.2%}, {attrs['gflops']:.4f} GFLOPs, {attrs['params']:,} params"
        else:
            line = attrs.get("reason", "")
        name = attrs.get("baseline") or attrs.get("spec", "")
        self.console.print(f"{self.prefix}trial {trial.number} {status}: {name} {line}", highlight=False,
                           soft_wrap=True)
        best = f"best val {self.best:.2%}" if self.best is not None else ""
        self.progress.update(self.trials, completed=self.done, note=best)


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
        f"{summary['device']} ({summary['threads']} threads)", highlight=False,
    )


class _TrainingProgress(_StderrProgress):
    """Epochs and batches with the running loss on stderr; the loss is read a few times a second at most."""

    REFRESH_SECONDS = 0.25

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = self.progress.add_task("epochs", total=epochs, note="")
        self.batches = self.progress.add_task("batches", total=None, note="")
        self.last_read = 0.0

    def batch_done(self, epoch: int, step: int, steps: int, loss: Any) -> None:
        if self.progress.disable:
            return
        now = time.monotonic()
        if now - self.last_read >= self.REFRESH_SECONDS or step == steps:
            self.last_read = now
            self.progress.update(self.batches, completed=step, total=steps, description=f"epoch {epoch}",
                                 note=f"loss {loss.item():.4f}")  # one sync, a few times a second

    def epoch_done(self, epoch: int, metrics: Any) -> bool:
        self.progress.update(self.epochs, completed=epoch, note=f"val {metrics.val_accuracy:.2%}")
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
