"""`resnet-bench sweep`: one process, or K worker processes on one study."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from resnet_bench.cli.arguments import add_device, add_format, add_storage, add_threads, positive_float, positive_int
from resnet_bench.cli.output import StderrProgress, SweepProgress, print_front, print_records, stdout_console
from resnet_bench.cli.reporting import records
from resnet_bench.devices import resolve_device
from resnet_bench.errors import BadInputError
from resnet_bench.files import check_writable
from resnet_bench.units import duration_text, plural


def cmd_sweep(args: argparse.Namespace) -> None:
    from resnet_bench.search.config import load_study_file
    from resnet_bench.search.storage import safe_url, study_to_write

    config = load_study_file(args.study_file)
    if args.dry_run:
        _sweep_dry_run(config, args)
        return
    import torch

    from resnet_bench.cpu import idle_cores, physical_cores, use_threads
    from resnet_bench.data import load_dataset
    from resnet_bench.search.storage import open_storage
    from resnet_bench.search.study import open_study
    from resnet_bench.search.sweep import Sweep
    from resnet_bench.search.workers import check_latency_alone, run_workers, worker_jobs, worker_plan

    resolve_device(args.device)  # checked before anything is created
    # The GPUs this command may use: none on the CPU, the one named by cuda:N, else every visible one.
    gpus = 0 if args.device == "cpu" else 1 if args.device.startswith("cuda:") else torch.cuda.device_count()
    budget = args.n_trials or config.n_trials
    plan = worker_plan(workers=args.workers, trials_per_gpu=args.trials_per_gpu, threads=args.threads,
                       cores=physical_cores(), gpus=gpus, largest_gflops=config.constraints.get("max_gflops"),
                       needs_latency=config.needs_latency, n_trials=budget, idle=None if args.threads else idle_cores())
    check_latency_alone(config, plan, gpus)
    location = study_to_write(config, study_name=args.study_name, storage=args.storage, out=args.out)
    # Everything checked before anything is made: no folder, no study, no queued baseline.
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
    timeout = args.timeout if args.timeout is not None else config.timeout_minutes
    if plan.workers > 1:
        # The parent makes the study (and enqueues the baselines) once; the workers join it, and this process
        # draws what they send.
        location.make_folder()
        _say_held(open_study(config, location.storage, location.name, heartbeat_seconds=args.heartbeat),
                  args.heartbeat)
        StderrProgress().console.print(
            f"{plural(plan.workers, 'worker process', 'worker processes')} of {plural(plan.threads, 'thread')} each: "
            f"{plan.why} (--workers and --threads to choose)", highlight=False, soft_wrap=True)
        with SweepProgress(budget, workers=min(plan.workers, budget), timeout_minutes=timeout) as progress:
            jobs = worker_jobs(config, location, budget, plan, device=args.device, heartbeat=args.heartbeat,
                               timeout_minutes=args.timeout, artifacts=args.artifacts,
                               batches=progress.shows_batches)
            summary = run_workers(jobs, budget, listener=progress)
    else:
        with SweepProgress(budget, timeout_minutes=timeout) as progress:
            sweep = Sweep(config, location, device=args.device, heartbeat_seconds=args.heartbeat,
                          on_trial_start=progress.trial_start, on_epoch=progress.epoch,
                          on_trial_end=progress.trial_end, on_batch=progress.batch, artifacts=args.artifacts)
            _say_held(sweep.study, args.heartbeat)
            summary = sweep.run(n_trials=args.n_trials, timeout_minutes=args.timeout)
    # The front as the report computes it, from the storage: all workers' trials, this command's and earlier ones.
    from resnet_bench.report.analysis import build_report
    from resnet_bench.search.trials import load_trials

    report = build_report(load_trials(location.storage, location.name, config))
    if args.format != "table":
        print_records(records(report.front), args.format)
        return
    print_front(report, caption=(
        # Short lines, broken where the sense breaks: a count is never parted from its noun at 80 columns.
        f"this command: {summary.trained} trained ({summary.stopped_early} stopped early, {summary.failed} failed)\n"
        f"{summary.infeasible} infeasible, {plural(summary.duplicates, 'duplicate')} (not trained again)\n"
        f"in {duration_text(summary.seconds)}, stopped by {summary.stopped}\nstorage {safe_url(summary.storage)}"))
    # A command to copy: whole, on its own line, never wrapped or centred.
    stdout_console().print(f"The whole report:\n{_report_command(args, location)}", soft_wrap=True, highlight=False)


def _say_held(study: Any, heartbeat: int) -> None:
    """Say which of the study's trials are running, held by a worker elsewhere or by one that died, and when a
    silent one is retried (a killed worker's trial waits out the heartbeat's grace before anyone retries it)."""
    from resnet_bench.search.storage import silent_workers

    for number, seconds in sorted(silent_workers(study).items()):
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


def add_sweep_command(sub: Any) -> None:
    """`sweep`."""
    from resnet_bench.search.config import SHIPPED_STUDIES

    sweep = sub.add_parser("sweep", help="run (or resume) a study; no file: the quickstart study")
    sweep.add_argument("study_file", nargs="?", metavar="STUDY_FILE",
                       help="a study file (.toml), or a shipped study: " + ", ".join(
                           f"{name} (default)" if name == "quickstart" else name for name in SHIPPED_STUDIES))
    sweep.add_argument("--n-trials", type=positive_int("--n-trials"),
                       help="trained trials this command adds (default: the file's budget.n_trials)")
    sweep.add_argument("--timeout", type=positive_float("--timeout"), metavar="MINUTES",
                       help="stop starting trials after this long")
    add_storage(sweep, out=(
        "the folder of studies: a study S keeps its default storage, training states and report in DIR/S/ (reports)"))
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
    sweep.add_argument("--dry-run", action="store_true", help="sample the space and measure costs; train nothing")
    sweep.add_argument("--dry-run-samples", type=positive_int("--dry-run-samples"), default=100,
                       help="candidates the dry run samples (100)")
    add_format(sweep)
    sweep.set_defaults(func=cmd_sweep)
