"""`resnet-bench confirm`: re-train a study's front and baselines with more seeds; how far the search's ranking holds."""

from __future__ import annotations

import argparse
import json
from typing import Any

from resnet_bench.cli.output import StderrProgress, print_records, stdout_console
from resnet_bench.errors import BadInputError


def cmd_confirm(args: argparse.Namespace) -> None:
    from resnet_bench.cli.reporting import study_to_read
    from resnet_bench.report.analysis import build_report
    from resnet_bench.report.confirmation import confirmation
    from resnet_bench.report.text import confirmed_rows
    from resnet_bench.search.confirm import confirm, plan_runs
    from resnet_bench.search.records import TrialRecord
    from resnet_bench.search.storage import STUDY_FILE, open_existing_storage
    from resnet_bench.search.study import check_same_conditions, stored_conditions
    from resnet_bench.search.trials import load_trials, stored_config

    given, location = study_to_read(args)
    study = load_trials(location.storage, location.name, given)
    # The data, split and seed come from the study file stored with the study: what its trials were measured under.
    storage = open_existing_storage(location.storage)
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(location.name))
    config = stored_config(attrs.get(STUDY_FILE, ""))
    if config is None:
        raise BadInputError(f"study {location.name!r} keeps no study file that reads: it cannot be re-trained under "
                            "its own conditions")
    if given is not None:
        check_same_conditions(given, stored_conditions(attrs, location.name), location.name)
    report = build_report(study)
    trials = report.trials
    chosen = trials[(trials["status"] == "trained") & (trials["on_front"] | trials["is_baseline"])]
    if chosen.empty:
        raise BadInputError(f"study {location.name!r} has no trained trial to confirm: run `resnet-bench sweep` first")
    # The front cheapest first, then the baselines that are not on it.
    numbers = [int(n) for n in report.front["number"]] + [int(n) for n in chosen["number"]
                                                         if int(n) not in set(report.front["number"])]
    records = [TrialRecord.from_attrs(_attrs(storage, location, n)) for n in numbers]
    seeds = [config.seed + i for i in range(1, args.seeds + 1)]
    runs = plan_runs(records, numbers, seeds, args.epochs)
    from resnet_bench.cpu import use_threads

    use_threads(args.threads)
    with _ConfirmProgress(len(runs)) as progress:
        summary = confirm(config, location, runs, device=args.device, on_run_start=progress.run_start,
                          on_epoch=progress.epoch, on_run_end=progress.run_end)
    result = confirmation(load_trials(location.storage, location.name, given))
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return
    rows = confirmed_rows(result)
    if args.format == "csv":
        print_records(rows, "csv")
        return
    print_confirmation(result, caption=(
        f"this command: {summary.trained} runs trained, {summary.stored_before} found stored already, in "
        f"{summary.seconds:.0f} s; `resnet-bench report` shows them beside the search's front"))


def _attrs(storage: Any, location: Any, number: int) -> dict[str, Any]:
    study_id = storage.get_study_id_from_name(location.name)
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number)).user_attrs


def print_confirmation(result: Any, caption: str | None = None) -> None:
    """The confirmed networks as a rich table, with the tau (what `confirm` and `report` show)."""
    from rich.table import Table

    from resnet_bench.report.text import confirm_conditions, confirmed_rows, tau_text

    console = stdout_console()
    rows = confirmed_rows(result)
    table = Table(title=f"Confirmed: the front and the baselines re-trained {confirm_conditions(result)} "
                        "(mean ± sd in points; front: on the confirmed front)", title_justify="left", caption=caption)
    for header in rows[0]:
        if header == "network":
            table.add_column(header, overflow="fold", ratio=1, min_width=12)
        else:
            table.add_column(header, justify="right", no_wrap=header != "seeds")
    for row in rows:
        row["network"] = row["network"].replace(",", ", ")
        table.add_row(*row.values(), style="bold" if "(baseline" in row["network"] else None)
    console.print(table)
    console.print(tau_text(result))


class _ConfirmProgress(StderrProgress):
    """Runs done and to go, and the current run's epochs, on stderr."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.runs = self.progress.add_task("runs", total=runs, note="")
        self.epochs = self.progress.add_task("epochs", total=None, note="")
        self.done = 0

    def run_start(self, run: Any) -> None:
        self.progress.update(self.epochs, completed=0, description=f"trial {run.number} seed {run.seed}",
                             note=(run.baseline or run.spec)[:60])

    def epoch(self, metrics: Any, epochs: int) -> None:
        self.progress.update(self.epochs, completed=metrics.epoch, total=epochs, note=f"val {metrics.val_accuracy:.2%}")

    def run_end(self, run: Any, record: Any) -> None:
        self.done += 1
        self.console.print(f"trial {run.number} seed {run.seed}: val {record.val_accuracy:.2%}, test "
                           f"{record.test_accuracy:.2%} after {record.epochs} epoch{'s' if record.epochs != 1 else ''}", highlight=False)
        self.progress.update(self.runs, completed=self.done)
