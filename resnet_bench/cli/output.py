"""What every command shares: one console, progress on stderr, JSON and CSV on stdout."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator
from typing import Any


def stdout_console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


@contextlib.contextmanager
def status_spinner(message: str) -> Iterator[None]:
    """A spinner on stderr while work runs (only when stderr is a terminal)."""
    from rich.console import Console

    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


def print_records(rows: list[dict[str, Any]], fmt: str) -> None:
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


class StderrProgress:
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
