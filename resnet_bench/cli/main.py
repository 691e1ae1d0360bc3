"""The `resnet-bench` command: parse, call the library once, render. Nothing below the CLI prints or exits."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from resnet_bench.version import __version__
from resnet_bench.cli.arguments import (
    add_device,
    add_format,
    add_storage,
    add_threads,
    positive_float,
    positive_int,
)
from resnet_bench.cli.confirming import cmd_confirm
from resnet_bench.cli.cost import cmd_models, cmd_profile
from resnet_bench.cli.experiments import add_experiment_commands
from resnet_bench.cli.reporting import cmd_report
from resnet_bench.cli.sweeping import cmd_sweep
from resnet_bench.cli.training import cmd_evaluate, cmd_train
from resnet_bench.errors import (
    EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, BadInputError,
)
from resnet_bench.search.config import SHIPPED_STUDIES

class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and the exit code 2 that argparse already uses)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    from resnet_bench.devices import DTYPES, MEMORY_FORMATS
    from resnet_bench.recipe import PRECISIONS

    parser = _Parser(prog="resnet-bench", description="Accuracy against compute for residual networks.")
    parser.add_argument("--version", action="version", version=f"resnet-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    models = sub.add_parser("models", help="list the presets with parameters, GFLOPs and published errors")
    models.add_argument("--family", help="only this family (torchvision, cifar-resnet, wrn, ...)")
    add_format(models)
    models.set_defaults(func=cmd_models)

    profile = sub.add_parser("profile", help="cost of one or more models, side by side")
    profile.add_argument(
        "models", nargs="+", metavar="MODEL",
        help="a preset name, a one-line spec (block=bottleneck,layers=3-4-6-3) or a path to a JSON spec",
    )
    profile.add_argument("--by-stage", action="store_true", help="also the cost of the stem, each stage and the head")
    profile.add_argument(
        "--input-size", type=positive_int("--input-size"), metavar="PIXELS",
        help="input height = width (default: 224 for the imagenet stem, 32 for the cifar stem)",
    )
    profile.add_argument(
        "--in-channels", type=positive_int("--in-channels"), metavar="N", help="input channels (default: the spec's)"
    )
    speed = profile.add_argument_group("measured speed")
    speed.add_argument("--latency", action="store_true", help="measure latency (batch 1) and throughput")
    speed.add_argument("--train", action="store_true", help="also measure training throughput (implies --latency)")
    add_device(speed, default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    speed.add_argument("--batch-size", type=positive_int("--batch-size"), default=64, help="for throughput (64)")
    speed.add_argument("--dtype", choices=DTYPES, default="float32",
                       help="float32 (default), an autocast dtype, or auto: what training would use here")
    speed.add_argument("--memory-format", choices=MEMORY_FORMATS, default="nchw",
                       help="nchw (default), channels_last, or auto: what training would use here")
    add_threads(speed)
    speed.add_argument("--runs", type=positive_int("--runs"), default=10, help="timed runs per figure (10)")
    add_format(profile)
    profile.set_defaults(func=cmd_profile)

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

    sweep = sub.add_parser("sweep", help="run (or resume) a study; no file: the quickstart study")
    sweep.add_argument("study_file", nargs="?", metavar="STUDY_FILE",
                       help="a study file (.toml), or a shipped study: " + ", ".join(
                           f"{name} (default)" if name == "quickstart" else name for name in SHIPPED_STUDIES))
    sweep.add_argument("--n-trials", type=positive_int("--n-trials"),
                       help="trained trials this command adds (default: the file's budget.n_trials)")
    sweep.add_argument("--timeout", type=positive_float("--timeout"), metavar="MINUTES",
                       help="stop starting trials after this long")
    add_storage(sweep)
    sweep.add_argument("--out", default="reports", metavar="DIR",
                       help="the folder of studies: a study S keeps its default storage, training states and "
                            "report in DIR/S/ (reports)")
    add_device(sweep)
    sweep.add_argument("--workers", type=positive_int("--workers"),
                       help="worker processes on this machine sharing the study, pinned round-robin to the GPUs "
                            "(default: chosen from the cores, the GPUs and the study's max_gflops, see the README)")
    sweep.add_argument("--trials-per-gpu", type=positive_int("--trials-per-gpu"), metavar="K",
                       help="K worker processes on each GPU, training side by side (instead of --workers)")
    add_threads(sweep, "the physical cores divided among the workers")
    sweep.add_argument("--heartbeat", type=positive_int("--heartbeat"), default=30, metavar="SECONDS",
                       help="a worker silent for twice this long is presumed dead: its trial is retried (30)")
    sweep.add_argument("--artifacts", metavar="DIR", default=None,
                       help="a folder every worker's machine mounts, where training states are shared so that a trial "
                            "retried on another machine resumes from its last epoch (default: each machine's own)")
    sweep.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    sweep.add_argument("--tickets", default=None, help=argparse.SUPPRESS)  # the parent's shared budget
    sweep.add_argument("--summary", default=None, help=argparse.SUPPRESS)  # where a worker writes its summary
    sweep.add_argument("--dry-run", action="store_true", help="sample the space and measure costs; train nothing")
    sweep.add_argument("--dry-run-samples", type=positive_int("--dry-run-samples"), default=100,
                       help="candidates the dry run samples (100)")
    add_format(sweep)
    sweep.set_defaults(func=cmd_sweep)

    report = sub.add_parser("report", help="the Pareto report of a study: tables, CSV, Markdown, HTML and charts")
    report.add_argument("study_file", nargs="?", metavar="STUDY_FILE",
                        help="the study's file (.toml) or a shipped study; it names the study (default: the one "
                             "study in --storage, else quickstart)")
    add_storage(report)
    report.add_argument("--out", default="reports", metavar="DIR",
                        help="the folder of studies, as for sweep: reads DIR/S/study.db by default and writes the "
                             "report of study S into DIR/S/ (reports)")
    add_format(report)
    report.set_defaults(func=cmd_report)

    confirm = sub.add_parser(
        "confirm", help="re-train a study's front and baselines with more seeds; how far the search's ranking holds")
    confirm.add_argument("study_file", nargs="?", metavar="STUDY_FILE",
                         help="the study's file (.toml) or a shipped study; it names the study (default: the one "
                              "study in --storage, else quickstart)")
    confirm.add_argument("--seeds", type=positive_int("--seeds"), default=3, metavar="N",
                         help="seeds 1..N beyond the search's seed, one run each (3)")
    confirm.add_argument("--epochs", type=positive_int("--epochs"),
                         help="epochs of each run (default: each trial's own recipe)")
    which = confirm.add_mutually_exclusive_group()
    which.add_argument("--top", type=positive_int("--top"), metavar="K",
                       help="the K most accurate networks of the front, and the baselines (default: the whole front)")
    which.add_argument("--trials", metavar="N,M", help="these trained trials only, by number (12,31)")
    confirm.add_argument("--workers", type=positive_int("--workers"),
                         help="worker processes that train runs side by side (default: as the sweep chooses)")
    add_storage(confirm)
    confirm.add_argument("--out", default="reports", metavar="DIR",
                         help="the folder of studies, as for sweep: study S lives in DIR/S/ (reports)")
    add_device(confirm)
    add_threads(confirm)
    add_format(confirm)
    confirm.set_defaults(func=cmd_confirm)

    evaluate = sub.add_parser("evaluate", help="re-measure a saved model")
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT",
                          help="a file that `resnet-bench train --save PATH` wrote (weights, spec, recipe, metrics)")
    add_device(evaluate)
    add_threads(evaluate)
    add_format(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    add_experiment_commands(sub)
    for command in sub.choices.values():  # `--debug` after the command too (the default stays the main parser's)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        return EXIT_OK
    except BadInputError as exc:
        if args.debug:  # the traceback, and the same exit code
            traceback.print_exc()
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
            traceback.print_exc()
        sys.stderr.write(f"resnet-bench {args.command}: failed: {type(exc).__name__}: {exc} (rerun with --debug)\n")
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
