"""`resnet-bench sweep`: one process, or K worker processes on one study."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_bench.cli.output import StderrProgress, print_records, stdout_console
from resnet_bench.errors import BadInputError
from resnet_bench.units import duration_text, plural


def cmd_sweep(args: argparse.Namespace) -> None:
    from resnet_bench.search.config import load_study_file
    from resnet_bench.search.storage import locate_study, safe_url

    config = load_study_file(args.study_file)
    if args.dry_run:
        _sweep_dry_run(config, args)
        return
    import torch

    from resnet_bench.cpu import idle_cores, physical_cores, use_threads
    from resnet_bench.devices import resolve_device
    from resnet_bench.files import check_writable
    from resnet_bench.search.study import open_study
    from resnet_bench.search.sweep import Sweep
    from resnet_bench.search.workers import TrialTickets, WorkerPlan, check_latency_alone, run_workers, worker_plan

    resolve_device(args.device)  # checked before anything is created
    # The GPUs this command may use: none on the CPU, the one named by cuda:N, else every visible one.
    gpus = 0 if args.device == "cpu" else 1 if args.device.startswith("cuda:") else torch.cuda.device_count()
    budget = args.n_trials or config.n_trials
    if args.worker_index:  # a worker of a parent sweep: this process, the threads the parent chose
        plan = WorkerPlan((None,), args.threads or physical_cores(), "a worker of a parent sweep")
    else:
        plan = worker_plan(workers=args.workers, trials_per_gpu=args.trials_per_gpu, threads=args.threads,
                           cores=physical_cores(), gpus=gpus, largest_gflops=config.constraints.get("max_gflops"),
                           needs_latency=config.needs_latency, n_trials=budget,
                           idle=None if args.threads else idle_cores())
        check_latency_alone(config, plan, gpus)
    location = locate_study(args.study_name or config.name, storage=args.storage, out=args.out)
    if not args.worker_index:  # everything checked before anything is made: no folder, no study, no queued baseline
        from resnet_bench.data import load_dataset
        from resnet_bench.search.storage import open_storage

        load_dataset(config.dataset, image_size=config.image_size)  # there, and readable (an image folder: cached)
        if args.storage:
            open_storage(args.storage)  # a bad URL, a missing driver or an unreachable server
    check_writable(location.folder)  # the states and the report go there: exit 2 now, not after training
    if args.artifacts:
        if "://" in args.artifacts:
            raise BadInputError(f"--artifacts {args.artifacts!r} is not accepted; give a folder that every worker's "
                                "machine mounts (a URL such as s3:// is not supported)")
        check_writable(Path(args.artifacts), "--artifacts")
    use_threads(plan.threads)
    if plan.workers > 1:
        # The parent makes the study (and enqueues the baselines) once; the workers join it.
        location.make_folder()
        _say_held(open_study(config, location.storage, location.name, heartbeat_seconds=args.heartbeat),
                  args.heartbeat)
        StderrProgress().console.print(
            f"{plural(plan.workers, 'worker process', 'worker processes')} of {plural(plan.threads, 'thread')} each: "
            f"{plan.why} (--workers and --threads to choose)", highlight=False, soft_wrap=True)
        summary = run_workers(args.study_file, location, args.out, budget, plan, device=args.device,
                              heartbeat=args.heartbeat, timeout_minutes=args.timeout, artifacts=args.artifacts)
    else:
        timeout = args.timeout if args.timeout is not None else config.timeout_minutes
        with _SweepProgress(budget, worker=args.worker_index, timeout_minutes=timeout) as progress:
            sweep = Sweep(config, location, device=args.device, worker=args.worker_index,
                          heartbeat_seconds=args.heartbeat, on_trial_start=progress.trial_start,
                          on_epoch=progress.epoch, on_trial_end=progress.trial_end, on_batch=progress.batch,
                          artifacts=args.artifacts)
            if not args.worker_index:
                _say_held(sweep.study, args.heartbeat)
            summary = sweep.run(n_trials=args.n_trials, timeout_minutes=args.timeout,
                                take_ticket=TrialTickets(args.tickets).take if args.tickets else None)
    if args.worker_index:  # a worker reports to the command that started it, as data, and builds no report
        if args.summary:
            summary.write(args.summary)
        return
    # The front as the report computes it, from the storage: all workers' trials, this command's and earlier ones.
    from resnet_bench.cli.output import print_front
    from resnet_bench.cli.reporting import records
    from resnet_bench.report.analysis import build_report
    from resnet_bench.search.trials import load_trials

    report = build_report(load_trials(location.storage, location.name, config))
    if args.format != "table":
        print_records(records(report.front), args.format)
        return
    print_front(report, caption=(
        f"this command: {summary.trained} trained ({summary.stopped_early} stopped early, {summary.failed} failed), "
        f"{summary.infeasible} infeasible and {plural(summary.duplicates, 'duplicate')} (not trained again) in "
        f"{summary.seconds:.0f} s, stopped by {summary.stopped}; storage {safe_url(summary.storage)}"))
    # A command to copy: whole, on its own line, never wrapped or centred.
    stdout_console().print(f"The whole report:\n{_report_command(args, location)}", soft_wrap=True, highlight=False)


def _say_held(study: Any, heartbeat: int) -> None:
    """Say which of the study's trials are running, held by a worker elsewhere or by one that died, and when a
    silent one is retried (a killed worker's trial waits out the heartbeat's grace before anyone retries it)."""
    from resnet_bench.search.storage import silent_workers

    for number, seconds in sorted(silent_workers(study._storage, study).items()):
        StderrProgress().console.print(
            f"trial {number} is held by a worker last heard from {seconds:.0f} s ago (running elsewhere, or "
            f"killed): once silent for {2 * heartbeat} s (twice --heartbeat) it is failed and trained again from "
            "its last saved epoch, when a worker of this command or a later one starts its next trial",
            highlight=False, soft_wrap=True)


def _report_command(args: argparse.Namespace, location: Any) -> str:
    """The `resnet-bench report` command that reads the study this sweep wrote."""
    from resnet_bench.search.storage import REPORTS, safe_url

    parts = ["resnet-bench report", args.study_file or ""]
    if args.study_name:
        parts.append(f"--study-name {location.name}")
    if args.out != str(REPORTS):
        parts.append(f"--out {args.out}")
    if not location.is_default_storage:
        parts.append(f"--storage {safe_url(location.storage)}")
    return " ".join(p for p in parts if p)


def _sweep_dry_run(config: Any, args: argparse.Namespace) -> None:
    from resnet_bench.search.dry_run import dry_run

    with StderrProgress() as progress:
        task = progress.progress.add_task(f"sampling candidates of {config.name}", total=args.dry_run_samples,
                                          note="")
        result = dry_run(config, samples=args.dry_run_samples,
                         on_sample=lambda i: progress.progress.update(task, completed=i))
        progress.progress.update(task, completed=args.dry_run_samples)
    row = dataclasses.asdict(result)
    row["feasible_fraction"] = result.feasible / result.samples  # an upper bound while `unchecked` is not empty
    if args.format != "table":
        print_records([row], args.format)
        return
    valid = result.samples - result.invalid

    def span(r: Any, fmt: str) -> str:
        return f"{r[0]:{fmt}} to {r[1]:{fmt}}" if r else "none"

    console = stdout_console()
    def count(n: float) -> str:
        return "continuous (a float range)" if n == float("inf") else f"{n:,.0f}"

    console.print(f"space of {config.name}: architectures: {count(result.architectures)}; "
                  f"recipes: {count(result.recipes)}", highlight=False)
    console.print(f"{result.samples} sampled at random: {result.invalid} refused by the generator, "
                  f"{result.feasible} of {valid} valid inside the constraints ({row['feasible_fraction']:.0%})")
    console.print(f"GFLOPs {span(result.gflops_range, '.4f')}, params {span(result.params_range, ',')} "
                  f"(inside the constraints: GFLOPs {span(result.feasible_gflops_range, '.4f')}, "
                  f"params {span(result.feasible_params_range, ',')})")
    for key in result.unchecked:
        console.print(f"{key} = {config.constraints[key]:g} is not checked by the dry run: latency is measured per "
                      "candidate, alone on its device, when the sweep runs; the share inside the constraints is an "
                      "upper bound", highlight=False)


class _SweepProgress(StderrProgress):
    """Trials done and to go (with the time left at the pace so far), the current trial's spec, epochs and batches
    (its own clock), and the best validation accuracy, on stderr. With a wall-clock budget, the time left of it: a
    bar of its own, and on each trial's line (the line a worker of `sweep --workers` prints)."""

    REFRESH_SECONDS = 0.25  # a batch's loss is read from the device at most this often

    def __init__(self, trials: int, worker: int = 0, timeout_minutes: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from rich.progress import TimeRemainingColumn

        super().__init__()
        self.progress.columns = (*self.progress.columns, TimeRemainingColumn())
        self.prefix = f"worker {worker}: " if worker else ""
        self.trials = self.progress.add_task("trials", total=trials, note="")
        self.epochs = self.progress.add_task("epochs", total=None, note="")
        self.clock, self.started = clock, clock()
        self.budget_seconds = timeout_minutes * 60 if timeout_minutes else None
        if self.budget_seconds:
            self.budget = self.progress.add_task("budget", total=self.budget_seconds,
                                                 note=f"no trial starts after {duration_text(self.budget_seconds)}")
        self.best: float | None = None
        self.done = 0
        self.last_read = 0.0

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

    def trial_start(self, number: int, spec_line: str) -> None:
        from resnet_bench.report.text import network_name

        self.spec = network_name({"spec": spec_line})[:60]  # shown beside each epoch's accuracy
        self.progress.reset(self.epochs, total=None, description=f"trial {number}", note=self.spec)

    def batch(self, epoch: int, step: int, steps: int, loss: Any) -> None:
        if self.progress.disable:
            return
        now = time.monotonic()
        if now - self.last_read >= self.REFRESH_SECONDS or step == steps:  # a sync a few times a second at most
            self.last_read = now
            self.progress.update(self.epochs, completed=epoch - 1 + step / steps,
                                 note=f"{self.spec} epoch {epoch} loss {loss.item():.3f}")
            self.budget_left()

    def epoch(self, number: int, metrics: Any, epochs: int) -> None:
        self.progress.update(self.epochs, completed=metrics.epoch, total=epochs,
                             note=f"{self.spec} val {metrics.val_accuracy:.2%}")
        self.budget_left()

    def trial_end(self, trial: Any) -> None:
        attrs = trial.user_attrs
        status = attrs.get("status", "failed")
        if status not in ("infeasible", "duplicate"):
            self.done += 1
        if status in ("trained", "stopped"):
            if status == "trained":  # a stopped trial's accuracy is a rung's, not the recipe's
                self.best = max(self.best or 0.0, attrs["val_accuracy"])
            line = f"val {attrs['val_accuracy']:.2%}, {attrs['gflops']:.4f} GFLOPs, {attrs['params']:,} params"
            if status == "stopped":
                line += f" (stopped after epoch {attrs['epochs']}: not in its rung's top)"
        else:
            line = attrs.get("reason", "")
        from resnet_bench.report.text import network_name

        name = network_name(attrs)  # what the search chose: not the data set's channels and classes
        seconds = f" in {attrs['trial_seconds']:.0f} s" if attrs.get("trial_seconds") else ""
        # Wrapped at a terminal's width; one line per trial in a log (a file or a pipe), for grep.
        self.console.print(f"{self.prefix}trial {trial.number} {status}{seconds}: {name} {line}{self.budget_left()}",
                           highlight=False, soft_wrap=not self.console.is_terminal)
        best = f"best val {self.best:.2%}" if self.best is not None else ""
        self.progress.update(self.trials, completed=self.done, note=best)
