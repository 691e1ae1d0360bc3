"""The command line's arguments that several commands share, declared once: --format, --threads, --device, the
study's --storage and --study-name, and the types that check numbers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from resnet_bench.errors import BadInputError, check_positive_int

FORMATS = ("table", "json", "csv")


def format_arg(value: str) -> str:
    if value not in FORMATS:
        raise argparse.ArgumentTypeError(f"--format {value!r} is not accepted; use one of: {', '.join(FORMATS)}")
    return value


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", type=format_arg, default="table", metavar="{table,json,csv}",
        help="table: rich table; json: one JSON document on stdout; csv: rows on stdout",
    )


def positive_int(flag: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            return check_positive_int(flag, int(value) if value.strip().lstrip("+-").isdigit() else value)
        except BadInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def positive_float(flag: str) -> Callable[[str], float]:
    """A finite number > 0 (not nan, not inf), or argparse's one-line error naming the flag."""
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise argparse.ArgumentTypeError(f"{flag} {value!r} is not accepted; it must be a finite number > 0")
        return number

    return parse


def add_threads(parser: argparse.ArgumentParser, default: str = "the machine's physical cores") -> None:
    parser.add_argument("--threads", type=positive_int("--threads"),
                        help=f"torch's CPU threads (intra-op; inter-op is 1) (default: {default})")


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str = "auto",
               help: str = "auto (a GPU if there is one), cpu, cuda or cuda:N") -> None:
    parser.add_argument("--device", default=default, help=help)


def add_storage(parser: argparse.ArgumentParser, default: str = "sqlite:///OUT/<study>/study.db",
                study_name: bool = True, out: str | None = None) -> None:
    """--storage (and --study-name), and --out with its help `out`: where a study lives, the same on every command
    that reads or writes one (search/storage.py)."""
    parser.add_argument("--storage", help=f"an Optuna storage URL (default: {default})")
    if study_name:
        parser.add_argument("--study-name", help="the study's name in the storage (default: the file's name)")
    if out is not None:
        parser.add_argument("--out", default="reports", metavar="DIR", help=out)
