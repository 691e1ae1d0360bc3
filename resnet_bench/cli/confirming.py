"""`resnet-bench confirm`: re-train a study's front and baselines with more seeds; how far the search's ranking
holds."""

from __future__ import annotations

import argparse
import json
from typing import Any

from resnet_bench.cli.arguments import add_device, add_format, add_storage, add_threads, positive_int
from resnet_bench.cli.output import StderrProgress, print_confirmation, print_records
from resnet_bench.devices import resolve_device
from resnet_bench.errors import BadInputError
from resnet_bench.search.confirm import expected_seconds
from resnet_bench.search.records import TrialRecord
from resnet_bench.units import duration_text, plural


def cmd_confirm(args: argparse.Namespace) -> None:
    from resnet_bench.report.analysis import build_report
    from resnet_bench.report.confirmation import confirmation
    from resnet_bench.report.text import confirmed_rows
    from resnet_bench.search.confirm import confirm, plan_runs
    from resnet_bench.search.storage import STUDY_FILE, open_existing_storage, study_to_read
    from resnet_bench.search.study import check_same_conditions, stored_conditions
    from resnet_bench.search.trials import load_trials, stored_config

    given, location = study_to_read(args.study_file, study_name=args.study_name, storage=args.storage, out=args.out)
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
    numbers = chosen_trials(build_report(study), location.name, top=args.top, trials=args.trials)
    records = [TrialRecord.from_attrs(_attrs(storage, location, n)) for n in numbers]
    seeds = [config.seed + i for i in range(1, args.seeds + 1)]
    runs = plan_runs(records, numbers, seeds, args.epochs)
    from resnet_bench.cpu import idle_cores, physical_cores, use_threads
    from resnet_bench.search.workers import worker_plan

    on_gpu = resolve_device(args.device).type == "cuda"  # checked before anything is trained
    todo = [r for r in runs if r.key not in attrs]
    plan = worker_plan(workers=args.workers, trials_per_gpu=None, threads=args.threads, cores=physical_cores(),
                       gpus=int(on_gpu),
                       largest_gflops=config.constraints.get("max_gflops"), needs_latency=False,
                       n_trials=max(1, len(todo)), idle=None if args.threads else idle_cores())
    use_threads(plan.threads)
    workers = max(1, min(plan.workers, len(todo)))  # never more processes than runs
    expected = expected_seconds(todo, dict(zip(numbers, records, strict=True)), workers)
    with _ConfirmProgress(len(runs)) as progress:
        progress.console.print(
            f"{plural(len(todo), 'run')} to train ({len(runs) - len(todo)} stored already)"
            f" on {plural(workers, 'worker process', 'worker processes')} of {plural(plan.threads, 'thread')}"
            f" each ({plan.why}; --workers and --threads to choose)"
            + (f"; about {duration_text(expected)}, from the search's own seconds per epoch" if expected else ""),
            highlight=False, soft_wrap=True)
        summary = confirm(config, location, runs, device=args.device, workers=workers, threads=plan.threads,
                          on_run_start=progress.run_start, on_epoch=progress.epoch, on_run_end=progress.run_end)
    result = confirmation(load_trials(location.storage, location.name, given))
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return
    rows = confirmed_rows(result)
    if args.format == "csv":
        print_records(rows, "csv")
        return
    print_confirmation(result, caption=(
        f"this command: {plural(summary.trained, 'run')} trained, {summary.stored_before} found stored already, in "
        f"{duration_text(summary.seconds)}; `resnet-bench report` shows them beside the search's front"))


def chosen_trials(report: Any, name: str, *, top: int | None = None, trials: str | None = None) -> list[int]:
    """The trials to confirm: by default the whole front (cheapest first) and the trained baselines off it;
    `top` K: the K most accurate networks of the front and the trained baselines; `trials` "12,31": those."""
    table = report.trials
    trained = table[table["status"] == "trained"]
    if trials is not None:
        try:
            numbers = [int(t) for t in trials.split(",") if t.strip()]
        except ValueError:
            numbers = []
        if not numbers:
            raise BadInputError(f"--trials {trials!r} is not accepted; give trial numbers separated by commas "
                                "(12,31)")
        done = set(trained["number"].astype(int))
        missing = [n for n in numbers if n not in done]
        if missing:
            raise BadInputError(f"--trials: {', '.join(map(str, missing))} of study {name!r} "
                                f"{'is' if len(missing) == 1 else 'are'} not trained to the end; only trained "
                                "trials can be confirmed (`resnet-bench report` lists them)")
        return list(dict.fromkeys(numbers))
    chosen = trained[trained["on_front"] | trained["is_baseline"]]
    if chosen.empty:
        raise BadInputError(f"study {name!r} has no trained trial to confirm: run `resnet-bench sweep` first")
    front = [int(n) for n in report.front["number"]]
    if top is not None:
        by_accuracy = report.front.sort_values(["val_accuracy", "number"], ascending=[False, True])
        front = [int(n) for n in by_accuracy["number"][:top]]
    # The front (cheapest first, or the top K most accurate first), then the baselines that are not among them.
    return front + [int(n) for n in chosen[chosen["is_baseline"]]["number"] if int(n) not in front]


def _attrs(storage: Any, location: Any, number: int) -> dict[str, Any]:
    study_id = storage.get_study_id_from_name(location.name)
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number)).user_attrs


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
                           f"{record.test_accuracy:.2%} after {plural(record.epochs, 'epoch')}", highlight=False)
        self.progress.update(self.runs, completed=self.done)


def add_confirm_command(sub: Any) -> None:
    """`confirm`."""
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
    add_storage(confirm, out="the folder of studies, as for sweep: study S lives in DIR/S/ (reports)")
    add_device(confirm)
    add_threads(confirm)
    add_format(confirm)
    confirm.set_defaults(func=cmd_confirm)
