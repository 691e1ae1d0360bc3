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

    from resnet_bench.search.sweep import Sweep, default_state_dir, default_storage, front, open_study, record_of

    storage = args.storage or default_storage(config, Path(args.out))
    state_dir = default_state_dir(storage, args.study_name or config.name, Path(args.out))
    budget = args.n_trials or config.n_trials
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // args.workers))
    if args.workers > 1:
        # The parent makes the study (and enqueues the baselines) once; the workers join it.
        study = open_study(config, storage, args.study_name, heartbeat_seconds=args.heartbeat)
        summary = _run_workers(args, storage, budget, study)
    else:
        with _SweepProgress(budget, worker=args.worker_index) as progress:
            sweep = Sweep(config, storage=storage, study_name=args.study_name, device=args.device,
                          state_dir=state_dir, worker=args.worker_index, heartbeat_seconds=args.heartbeat,
                          on_trial_start=progress.trial_start, on_epoch=progress.epoch,
                          on_trial_end=progress.trial_end)
            summary = sweep.run(n_trials=args.n_trials, timeout_minutes=args.timeout)
        study = sweep.study
    rows = []
    for trial in front(study):
        record = record_of(trial)
        rows.append({"number": trial.number, "baseline": record.baseline, "spec": record.spec,
                     "val_accuracy": record.val_accuracy, "test_accuracy": record.test_accuracy,
                     "gflops": record.gflops, "params": record.params, "train_seconds": record.train_seconds})
    if args.format != "table":
        print_records(rows, args.format)
        return
    from rich.table import Table

    objectives = ", ".join(f"{o.direction} {o.metric}" for o in config.objectives)
    table = Table(title=f"Pareto front of {summary.study_name} ({objectives})",
                  caption=f"{summary.trained} trained ({summary.failed} failed) and {summary.infeasible} infeasible "
                          f"in {summary.seconds:.0f} s, stopped by {summary.stopped}; storage {summary.storage}")
    for column in ("#", "network", "val acc", "test acc", "GFLOPs", "params"):
        table.add_column(column, justify="left" if column == "network" else "right", overflow="fold")
    for r in rows:
        name = f"[bold]{r['baseline']}[/bold]" if r["baseline"] else r["spec"]
        table.add_row(str(r["number"]), name, f"{r['val_accuracy']:.2%}", f"{r['test_accuracy']:.2%}",
                      f"{r['gflops']:.4f}", f"{r['params']:,}")
    stdout_console().print(table)


def _run_workers(args: argparse.Namespace, storage: str, budget: int, study: Any) -> Any:
    """K worker processes of this command on one study; each gets its share of the trials, a GPU, and threads."""
    import subprocess

    import torch

    from resnet_bench.search.sweep import summarise_since

    study_name = study.study_name
    since = datetime.datetime.now()
    gpus = torch.cuda.device_count()
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    started = time.perf_counter()
    workers = []
    for i in range(args.workers):
        share = budget // args.workers + (i < budget % args.workers)
        if share == 0:
            continue
        command = [sys.executable, "-m", "resnet_bench", "sweep", *([args.study_file] if args.study_file else []),
                   "--storage", storage, "--study-name", study_name, "--n-trials", str(share), "--out", args.out,
                   "--device", args.device, "--threads", str(threads), "--heartbeat", str(args.heartbeat),
                   "--worker-index", str(i + 1), "--format", "json"]
        if args.timeout:
            command += ["--timeout", str(args.timeout)]
        env = dict(os.environ, RESNET_BENCH_WORKER=str(i + 1))
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
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
