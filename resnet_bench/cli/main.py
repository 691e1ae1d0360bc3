"""The `resnet-bench` command: parse, call the library once, render. Nothing below the CLI prints or exits."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from resnet_bench.cli.confirming import add_confirm_command
from resnet_bench.cli.cost import add_cost_commands
from resnet_bench.cli.experiments import add_experiment_commands
from resnet_bench.cli.reporting import add_report_command
from resnet_bench.cli.sweeping import add_sweep_command
from resnet_bench.cli.training import add_training_commands
from resnet_bench.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BadInputError,
)
from resnet_bench.version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and the exit code 2 that argparse already uses)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = _Parser(prog="resnet-bench", description="Accuracy against compute for residual networks.")
    parser.add_argument("--version", action="version", version=f"resnet-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    add_cost_commands(sub)
    add_training_commands(sub)
    add_sweep_command(sub)
    add_report_command(sub)
    add_confirm_command(sub)
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
