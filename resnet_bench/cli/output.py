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


def print_front(report: Any, caption: str | None = None) -> None:
    """The front as a rich table, cheapest first, baselines in bold (what `report` and `sweep` show)."""
    from resnet_bench.report.text import baselines_off_front, front_rows

    console = stdout_console()
    rows = front_rows(report, test_interval=False)
    if not rows:
        console.print("The front is empty: no trial has been trained yet.")
        if caption:
            console.print(caption)
        return
    objectives = ", ".join(f"{d} {m}" for m, d in report.study.objectives)
    # Under the front, the baselines it leaves out, so that the search reads against them.
    console.print(network_table(
        f"Pareto front of {report.study.name}, cheapest first ({objectives}; baselines in bold)", rows,
        baselines_off_front(report, test_interval=False), caption=caption))


def print_confirmation(result: Any, caption: str | None = None) -> None:
    """The confirmed networks as a rich table, with the tau (what `confirm` and `report` show)."""
    from resnet_bench.report.text import confirm_conditions, confirmed_rows, tau_text

    console = stdout_console()
    console.print(network_table(f"Confirmed: the front and the baselines re-trained {confirm_conditions(result)} "
                                "(mean ± sd in points; front: on the confirmed front)", confirmed_rows(result),
                                caption=caption))
    console.print(tau_text(result))


def network_table(title: str, rows: list[dict[str, str]], below: list[dict[str, str]] | None = None,
                  caption: str | None = None) -> Any:
    """Rows of display strings with a `network` column as a rich table: the network's one-line form folds between
    its fields, the numbers stay on one line, baselines in bold; `below` under a line of its own."""
    from rich.table import Table

    from resnet_bench.report.text import wrappable

    table = Table(title=title, title_justify="left", caption=caption)
    for header in rows[0]:
        if header == "network":
            table.add_column(header, overflow="fold", ratio=1, min_width=12)
        else:
            table.add_column(header, justify="right", no_wrap=header != "seeds")
    for i, row in enumerate([*rows, *(below or [])]):
        if i == len(rows):
            table.add_section()
        network = wrappable(row["network"])
        table.add_row(*{**row, "network": network}.values(), style="bold" if "(baseline" in network else None)
    return table
