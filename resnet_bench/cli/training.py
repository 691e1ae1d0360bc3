"""`resnet-bench train` and `resnet-bench evaluate`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from resnet_bench.cli.arguments import add_device, add_format, add_threads, positive_float, positive_int
from resnet_bench.cli.output import StderrProgress, print_records, stdout_console
from resnet_bench.cpu import use_threads
from resnet_bench.devices import MEMORY_FORMATS, parse_memory_format, resolve_device
from resnet_bench.errors import BadInputError
from resnet_bench.files import check_writable
from resnet_bench.presets import resolve
from resnet_bench.recipe import PRECISIONS, get_recipe, precision_trained
from resnet_bench.units import plural


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from resnet_bench.checkpoint import save_checkpoint
    from resnet_bench.data import load_dataset, split
    from resnet_bench.models import build_model
    from resnet_bench.train import spec_for_data, train

    recipe = get_recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        compile=True if args.compile else None, precision=args.precision,
                        channels_last=parse_memory_format(args.memory_format) if args.memory_format else None)
    device = resolve_device(args.device)
    if args.save:  # before training: a checkpoint that cannot be written is found now, not after the last epoch
        if Path(args.save).is_dir():
            raise BadInputError(f"--save {args.save!r} is a folder; give the checkpoint's file name (model.pt)")
        check_writable(Path(args.save).resolve().parent, flag="--save")
    use_threads(args.threads)
    base = resolve(args.model)
    data = split(load_dataset(args.dataset, image_size=args.image_size), val_size=args.val_size, seed=args.seed)
    spec = spec_for_data(base, data)
    torch.manual_seed(args.seed)
    model = build_model(spec)
    with _TrainingProgress(recipe.epochs) as progress:
        result = train(model, data, recipe, device, callback=progress.epoch_done, on_batch=progress.batch_done,
                       test_curve=args.test_curve)
    if args.save:
        save_checkpoint(args.save, model, spec, result, dataset=data.dataset_name, val_size=data.val_size,
                        split_seed=data.seed, image_size=data.image_size)
    summary = {"model": args.model, "spec": spec.format(), "dataset": data.dataset_name, **result.to_row()}
    if args.format == "json":
        print_records([{**summary, "history": result.history_rows()}], "json")
    elif args.format == "csv":
        print_records([{"model": args.model, **row} for row in result.history_rows()], "csv")
    else:
        _print_training(summary, result.history_rows())


def cmd_evaluate(args: argparse.Namespace) -> None:
    from resnet_bench.checkpoint import load_checkpoint
    from resnet_bench.data import load_dataset, split
    from resnet_bench.models import build_model
    from resnet_bench.train import accuracy

    checkpoint = load_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    use_threads(args.threads)
    model = build_model(checkpoint.spec)
    model.load_state_dict(checkpoint.state_dict, strict=True)
    model.to(device)
    data = split(load_dataset(checkpoint.dataset, image_size=checkpoint.image_size), val_size=checkpoint.val_size,
                 seed=checkpoint.split_seed)
    # Measured as it was trained: in its precision and memory format (a checkpoint of an earlier release has
    # neither: auto was then bf16 on CUDA and fp32 on the CPU).
    saved = checkpoint.metrics
    precision = precision_trained(saved.get("precision", ""), saved.get("recipe", {}).get("precision", "auto"),
                                  str(saved.get("device", "cpu")))
    bf16, channels_last = precision == "bf16", saved.get("memory_format") == "channels_last"
    row = {
        "checkpoint": args.checkpoint, "spec": checkpoint.spec.format(), "dataset": checkpoint.dataset,
        "val_accuracy": accuracy(model, data.val, data, device, channels_last, bf16),
        "test_accuracy": accuracy(model, data.test, data, device, channels_last, bf16),
        "saved_val_accuracy": checkpoint.metrics["val_accuracy"],
        "saved_test_accuracy": checkpoint.metrics["test_accuracy"], "device": str(device), "precision": precision,
        "memory_format": saved.get("memory_format", "nchw"),
    }
    if args.format != "table":
        print_records([row], args.format)
        return
    from rich.table import Table

    table = Table(title=f"evaluate {args.checkpoint}")
    for column in ("", "now", "when saved"):
        table.add_column(column, justify="left" if not column else "right")
    for key in ("val_accuracy", "test_accuracy"):
        table.add_row(key.replace("_", " "), f"{row[key]:.2%}", f"{row['saved_' + key]:.2%}")
    stdout_console().print(table)


def _print_training(summary: dict[str, Any], history: list[dict[str, Any]]) -> None:
    from rich.table import Table

    console = stdout_console()
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
        f"(test is reported, never used for selection); {plural(summary['epochs'], 'epoch')}, "
        f"{summary['train_seconds']:.1f} s of training, {summary['images_per_second']:,.0f} images/s on "
        f"{summary['device']} ({plural(summary['threads'], 'thread')}, {summary['precision']}, "
        f"{summary['memory_format']})"
        + (f"; torch.compile took {summary['compile_seconds']:.1f} s apart" if summary["compile_seconds"] else ""),
        highlight=False,
    )


class _TrainingProgress(StderrProgress):
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


def add_training_commands(sub: Any) -> None:
    """`train` and `evaluate`."""

    train = sub.add_parser("train", help="train one candidate and print its metrics")
    train.add_argument("model", metavar="MODEL", help="a preset name, a one-line spec or a path to a JSON spec")
    train.add_argument("--dataset", default="fashion-mnist-mini",
                       help="fashion-mnist, fashion-mnist-mini (default, ships with the package), cifar10, "
                            "cifar100 or imagefolder:PATH")
    train.add_argument("--recipe", default="fast",
                       help="a named recipe, fast (default) or he2015, or a recipe as a JSON object "
                            "(as a trial stores it)")
    train.add_argument("--epochs", type=positive_int("--epochs"), help="override the recipe's epochs")
    train.add_argument("--batch-size", type=positive_int("--batch-size"), help="override the recipe's batch size")
    train.add_argument("--lr", type=positive_float("--lr"),
                       help="override the recipe's learning rate (per 128 images of batch)")
    train.add_argument("--precision", choices=PRECISIONS,
                       help="auto (the recipe's default: bf16 on CUDA and on CPUs with native bf16, else fp32), "
                            "bf16 or fp32")
    train.add_argument("--memory-format", choices=MEMORY_FORMATS,
                       help="auto (the recipe's default: the device's faster one), channels_last or nchw")
    add_threads(train)
    train.add_argument("--compile", action="store_true",
                       help="torch.compile the model (its compile time is reported apart from training time)")
    train.add_argument("--seed", type=int, default=0, help="weights, validation split, shuffling (0)")
    add_device(train)
    train.add_argument("--val-size", type=positive_int("--val-size"), default=2000,
                       help="validation images carved from the training set (2000)")
    train.add_argument("--image-size", type=positive_int("--image-size"), default=32,
                       help="imagefolder only: images are decoded once at this size (32)")
    train.add_argument("--test-curve", action="store_true", help="also measure the test error after every epoch")
    train.add_argument("--save", metavar="PATH", help="write a checkpoint (weights, spec, recipe, metrics)")
    add_format(train)
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="re-measure a saved model")
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT",
                          help="a file that `resnet-bench train --save PATH` wrote (weights, spec, recipe, metrics)")
    add_device(evaluate)
    add_threads(evaluate)
    add_format(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)
