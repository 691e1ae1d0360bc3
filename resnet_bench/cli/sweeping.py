"""`resnet-bench sweep`: one process, or K worker processes on one study."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
from typing import Any

from resnet_bench.cli.output import (
    EXIT_INTERRUPTED, StderrProgress, print_records, status_spinner, stdout_console,
)
from resnet_bench.errors import BadInputError


def _cmd_sweep(args: argparse.Namespace) -> None:
    from pathlib import Path

    from resnet_bench.search.config import load_study_file

    config = load_study_file(args.study_file)
    if args.timeout is not None and args.timeout <= 0:
        raise BadInputError(f"--timeout {args.timeout} is not accepted; it must be a number of minutes > 0")
    if args.dry_run:
        _sweep_dry_run(config, args)
        return
    import torch

    from resnet_bench.search.sweep import Sweep, default_state_dir, default_storage, open_study

    gpus = torch.cuda.device_count() if args.device != "cpu" else 0
    plan = plan_workers(args.workers, args.trials_per_gpu, gpus)
    if config.needs_latency and len(plan) > max(gpus, 1):
        raise BadInputError(
            f"latency_ms is measured alone, and {len(plan)} worker processes would share "
            f"{'a GPU' if gpus else 'the CPU'}; a study with a latency objective or max_latency_ms runs one worker "
            "per device (drop --workers/--trials-per-gpu, or the latency from the study file)")
    storage = args.storage or default_storage(config, Path(args.out))
    state_dir = default_state_dir(storage, args.study_name or config.name, Path(args.out))
    budget = args.n_trials or config.n_trials
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // len(plan)))
    if len(plan) > 1:
        # The parent makes the study (and enqueues the baselines) once; the workers join it.
        study = open_study(config, storage, args.study_name, heartbeat_seconds=args.heartbeat)
        summary = _run_workers(args, storage, budget, study, plan)
    else:
        with _SweepProgress(budget, worker=args.worker_index) as progress:
            sweep = Sweep(config, storage=storage, study_name=args.study_name, device=args.device,
                          state_dir=state_dir, worker=args.worker_index, heartbeat_seconds=args.heartbeat,
                          on_trial_start=progress.trial_start, on_epoch=progress.epoch,
                          on_trial_end=progress.trial_end)
            summary = sweep.run(n_trials=args.n_trials, timeout_minutes=args.timeout)
        study = sweep.study
    # The front as the report computes it, from the storage: all workers' trials, this command's and earlier ones.
    from resnet_bench.cli.reporting import print_front, records
    from resnet_bench.report.analysis import build_report
    from resnet_bench.search.trials import load_trials

    report = build_report(load_trials(storage, study.study_name, config))
    if args.format != "table":
        print_records(records(report.front), args.format)
        return
    print_front(report, caption=(
        f"this command: {summary.trained} trained ({summary.failed} failed) and {summary.infeasible} infeasible in "
        f"{summary.seconds:.0f} s, stopped by {summary.stopped}; storage {summary.storage}; the whole report: "
        f"resnet-bench report --storage {summary.storage} --study-name {summary.study_name}"))


def plan_workers(workers: int | None, trials_per_gpu: int | None, gpus: int) -> list[int | None]:
    """The GPU of each worker process this command starts (None: the CPU), round-robin over the GPUs.

    `--workers N` starts N processes; `--trials-per-gpu K` starts K per GPU, so that small networks that leave
    a GPU idle train side by side (processes, each with its own CUDA context; the GPU's settings are untouched).
    """
    if trials_per_gpu is not None:
        if workers is not None:
            raise BadInputError("--workers and --trials-per-gpu cannot both be given; --trials-per-gpu K starts "
                                "K worker processes on each GPU")
        if gpus == 0:
            raise BadInputError("--trials-per-gpu needs a GPU, and none is visible here (or --device cpu was "
                                "given); on a CPU, --workers N runs N worker processes")
        return [i % gpus for i in range(trials_per_gpu * gpus)]
    return [i % gpus if gpus else None for i in range(workers or 1)]


def _run_workers(args: argparse.Namespace, storage: str, budget: int, study: Any, plan: list[int | None]) -> Any:
    """Worker processes of this command on one study; each gets its share of the trials, its GPU, and threads."""
    import subprocess

    from resnet_bench.search.sweep import summarise_since

    study_name = study.study_name
    since = datetime.datetime.now()
    threads = args.threads or max(1, (os.cpu_count() or 1) // len(plan))
    started = time.perf_counter()
    workers = []
    for i, gpu in enumerate(plan):
        share = budget // len(plan) + (i < budget % len(plan))
        if share == 0:
            continue
        command = [sys.executable, "-m", "resnet_bench", "sweep", *([args.study_file] if args.study_file else []),
                   "--storage", storage, "--study-name", study_name, "--n-trials", str(share), "--out", args.out,
                   "--device", args.device, "--threads", str(threads), "--heartbeat", str(args.heartbeat),
                   "--worker-index", str(i + 1), "--format", "json"]
        if args.timeout:
            command += ["--timeout", str(args.timeout)]
        env = dict(os.environ, RESNET_BENCH_WORKER=str(i + 1))
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    try:
        codes = [w.wait() for w in workers]
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them mark their trials failed
        for w in workers:
            w.wait()
        raise
    if any(code == EXIT_INTERRUPTED for code in codes):
        raise KeyboardInterrupt
    if any(codes):
        raise RuntimeError(f"{sum(1 for c in codes if c)} of {len(codes)} workers failed (exit codes {codes})")
    return summarise_since(study, since, storage, seconds=time.perf_counter() - started,
                           stopped=f"budget ({len(workers)} workers)")


def _sweep_dry_run(config: Any, args: argparse.Namespace) -> None:
    from resnet_bench.search.sweep import dry_run

    with status_spinner(f"sampling {args.dry_run_samples} candidates of {config.name}"):
        result = dry_run(config, samples=args.dry_run_samples)
    row = dataclasses.asdict(result)
    row["feasible_fraction"] = result.feasible / result.samples
    if args.format != "table":
        print_records([row], args.format)
        return
    valid = result.samples - result.invalid

    def span(r: Any, fmt: str) -> str:
        return f"{r[0]:{fmt}} to {r[1]:{fmt}}" if r else "none"

    console = stdout_console()
    size = "continuous (a float range)" if result.space_size == float("inf") else f"{result.space_size:,.0f}"
    console.print(f"space of {config.name}: {size} candidates")
    console.print(f"{result.samples} sampled at random: {result.invalid} refused by the generator, "
                  f"{result.feasible} of {valid} valid inside the constraints ({row['feasible_fraction']:.0%})")
    console.print(f"GFLOPs {span(result.gflops_range, '.4f')}, params {span(result.params_range, ',')} "
                  f"(inside the constraints: GFLOPs {span(result.feasible_gflops_range, '.4f')}, "
                  f"params {span(result.feasible_params_range, ',')})")


class _SweepProgress(StderrProgress):
    """Trials done and to go, the current trial's epochs and the best validation accuracy, on stderr."""

    def __init__(self, trials: int, worker: int = 0) -> None:
        super().__init__()
        self.prefix = f"worker {worker}: " if worker else ""
        self.trials = self.progress.add_task("trials", total=trials, note="")
        self.epochs = self.progress.add_task("epochs", total=None, note="")
        self.best: float | None = None
        self.done = 0

    def trial_start(self, number: int, spec: str) -> None:
        self.progress.update(self.epochs, completed=0, description=f"trial {number}", note=spec[:60])

    def epoch(self, number: int, metrics: Any, epochs: int) -> None:
        self.progress.update(self.epochs, completed=metrics.epoch, total=epochs,
                             note=f"val {metrics.val_accuracy:.2%}")

    def trial_end(self, trial: Any) -> None:
        attrs = trial.user_attrs
        status = attrs.get("status", "failed")
        if status != "infeasible":
            self.done += 1
        if status == "trained":
            self.best = max(self.best or 0.0, attrs["val_accuracy"])
            line = f"val {attrs['val_accuracy']:.2%}, {attrs['gflops']:.4f} GFLOPs, {attrs['params']:,} params"
        else:
            line = attrs.get("reason", "")
        name = attrs.get("baseline") or attrs.get("spec", "")
        self.console.print(f"{self.prefix}trial {trial.number} {status}: {name} {line}", highlight=False,
                           soft_wrap=True)
        best = f"best val {self.best:.2%}" if self.best is not None else ""
        self.progress.update(self.trials, completed=self.done, note=best)
