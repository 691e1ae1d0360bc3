"""What every command shares: one console, progress on stderr, JSON and CSV on stdout."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from resnet_bench.search.records import DUPLICATE, FAILED, INFEASIBLE, STOPPED, TRAINED, TrialRecord
from resnet_bench.units import duration_text, gflops_cell


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
            disable=not self.console.is_terminal,  # bars only on a terminal
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

    from resnet_bench.report.text import names_a_baseline, wrappable

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
        table.add_row(*{**row, "network": network}.values(), style="bold" if names_a_baseline(network) else None)
    return table


class SweepProgress(StderrProgress):
    """Trials done and to go (with the time left at the pace so far), each running trial's spec, epochs and batches
    (its own clock), and the best validation accuracy, on stderr. With a wall-clock budget, the time left of it: a
    bar of its own, and on each trial's line.

    One process shows its trial; the parent of `sweep --workers N` shows every worker's, from the events its
    workers send (search/workers.py): each method takes the `worker` that sent it (0: this process), which names
    the trial's bar and starts its line ("worker 2: trial 5 trained ...")."""

    REFRESH_SECONDS = 0.25  # a batch's loss is read from the device at most this often

    def __init__(self, trials: int, workers: int = 0, timeout_minutes: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from rich.progress import TimeRemainingColumn

        super().__init__()
        self.progress.columns = (*self.progress.columns, TimeRemainingColumn())
        self.trials = self.progress.add_task("trials", total=trials, note="")
        # One bar of epochs per worker (one for this process without workers).
        self.epochs = {w: self.progress.add_task(f"worker {w}" if w else "epochs", total=None, note="")
                       for w in (range(1, workers + 1) if workers else [0])}
        self.clock, self.started = clock, clock()
        self.budget_seconds = timeout_minutes * 60 if timeout_minutes else None
        if self.budget_seconds:
            self.budget = self.progress.add_task("budget", total=self.budget_seconds,
                                                 note=f"no trial starts after {duration_text(self.budget_seconds)}")
        self.best: float | None = None
        self.done = 0
        self.last_read: dict[int, float] = {}  # each worker's last batch drawn
        self.spec: dict[int, str] = {}

    @property
    def shows_batches(self) -> bool:
        """Whether a batch's loss is drawn (bars on a terminal): else there is no need to read it from the device."""
        return not self.progress.disable

    def budget_left(self) -> str:
        """The wall-clock budget's time left, as a trial's line says it ('' without a budget)."""
        if not self.budget_seconds:
            return ""
        spent = self.clock() - self.started
        if not self.progress.disable:
            self.progress.update(self.budget, completed=min(spent, self.budget_seconds))
        if spent >= self.budget_seconds:
            return f"; the {duration_text(self.budget_seconds)} budget is spent: no new trial starts"
        return f"; {duration_text(self.budget_seconds - spent)} of the {duration_text(self.budget_seconds)} budget left"

    def trial_start(self, number: int, spec_line: str, worker: int = 0) -> None:
        from resnet_bench.report.text import network_name

        self.spec[worker] = network_name({"spec": spec_line})[:60]  # shown beside each epoch's accuracy
        label = f"worker {worker}: trial {number}" if worker else f"trial {number}"
        self.progress.reset(self.epochs[worker], total=None, description=label, note=self.spec[worker])

    def batch(self, epoch: int, step: int, steps: int, loss: Any, worker: int = 0) -> None:
        """`loss`: a number, or a tensor on the device (read a few times a second at most, each read a sync)."""
        if self.progress.disable:
            return
        now = time.monotonic()
        if now - self.last_read.get(worker, 0.0) >= self.REFRESH_SECONDS or step == steps:
            self.last_read[worker] = now
            self.progress.update(self.epochs[worker], completed=epoch - 1 + step / steps,
                                 note=f"{self.spec.get(worker, '')} epoch {epoch} loss {float(loss):.3f}")
            self.budget_left()

    def epoch(self, number: int, metrics: Any, epochs: int, worker: int = 0) -> None:
        self.progress.update(self.epochs[worker], completed=metrics.epoch, total=epochs,
                             note=f"{self.spec.get(worker, '')} val {metrics.val_accuracy:.2%}")
        self.budget_left()

    def trial_end(self, trial: Any, worker: int = 0) -> None:
        from resnet_bench.report.text import network_name

        record = TrialRecord.from_attrs(trial.user_attrs)
        status = record.status or FAILED
        if status not in (INFEASIBLE, DUPLICATE):
            self.done += 1
        if status in (TRAINED, STOPPED) and record.val_accuracy is not None:
            if status == TRAINED:  # a stopped trial's accuracy is a rung's, not the recipe's
                self.best = max(self.best or 0.0, record.val_accuracy)
            line = f"val {record.val_accuracy:.2%}, {gflops_cell(record.gflops)} GFLOPs, {record.params:,} params"
            if status == STOPPED:
                line += f" (stopped after epoch {record.epochs}: not in its rung's top)"
        else:
            line = record.reason
        name = network_name(trial.user_attrs)  # what the search chose: not the data set's channels and classes
        seconds = f" in {record.trial_seconds:.0f} s" if record.trial_seconds else ""
        prefix = f"worker {worker}: " if worker else ""
        # Wrapped at a terminal's width; one line per trial in a log (a file or a pipe), for grep.
        self.console.print(f"{prefix}trial {trial.number} {status}{seconds}: {name} {line}{self.budget_left()}",
                           highlight=False, soft_wrap=not self.console.is_terminal)
        best = f"best val {self.best:.2%}" if self.best is not None else ""
        self.progress.update(self.trials, completed=self.done, note=best)
