"""The `resnet-bench` command: parse, call the library once, render. Nothing below this module prints or exits."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
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


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = _Parser(prog="resnet-bench", description="Accuracy against compute for residual networks.")
    parser.add_argument("--version", action="version", version=f"resnet-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    models = sub.add_parser("models", help="list the presets")
    models.add_argument("--family", help="only this family (torchvision, cifar-resnet, wrn, ...)")
    _add_format(models)
    models.set_defaults(func=_cmd_models)

    profile = sub.add_parser("profile", help="cost of one or more models, side by side")
    profile.add_argument(
        "models", nargs="+", metavar="MODEL",
        help="a preset name, a one-line spec (block=bottleneck,layers=3-4-6-3) or a path to a JSON spec",
    )
    _add_format(profile)
    profile.set_defaults(func=_cmd_profile)
    return parser


def _cmd_models(args: argparse.Namespace) -> list[dict[str, Any]]:
    from resnet_bench import presets

    families = sorted({presets.family(n) for n in presets.names()})
    if args.family is not None and args.family not in families:
        raise BadInputError(f"--family {args.family!r} is not accepted; use one of: {', '.join(families)}")
    return [
        {"name": name, "family": presets.family(name), "spec": presets.get(name).format()}
        for name in presets.names(args.family)
    ]


def _cmd_profile(args: argparse.Namespace) -> list[dict[str, Any]]:
    from resnet_bench.models import build_model
    from resnet_bench.presets import resolve

    rows = []
    for model in args.models:
        spec = resolve(model)
        net = build_model(spec)
        rows.append({"model": model, "params": sum(p.numel() for p in net.parameters()), "spec": spec.format()})
    return rows


def render(rows: list[dict[str, Any]], fmt: str, title: str, out: io.TextIOBase | None = None) -> None:
    """Print rows as a rich table, one JSON document, or CSV."""
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps(rows, indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for key in rows[0] if rows else []:
            table.add_column(key, justify="right" if isinstance(rows[0][key], (int, float)) else "left")
        for row in rows:
            table.add_row(*(f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in row.values()))
        Console(file=out).print(table)


_TITLES: dict[Callable[..., Any], str] = {_cmd_models: "presets", _cmd_profile: "cost"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        rows = args.func(args)
        render(rows, args.format, _TITLES[args.func])
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
