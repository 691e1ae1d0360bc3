"""Worker processes on one machine sharing one study: which device each gets, its threads, and their summaries.

Each worker is a `resnet-bench sweep` process pointed at the same storage and study name, which is
Optuna's own distributed mode; this module only starts them here and adds up what they report.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from resnet_bench.errors import EXIT_INTERRUPTED, BadInputError
from resnet_bench.search.config import StudyConfig
from resnet_bench.search.storage import StudyLocation
from resnet_bench.search.sweep import SweepSummary

WORKER_ENV = "RESNET_BENCH_WORKER"  # set in a worker process: its index, from 1


class TrialTickets:
    """The trained-trial budget of one command, shared by its workers as they go: a file holding the tickets left,
    taken one at a time under a lock. A worker holds one ticket while it proposes and trains; a trained (or failed)
    trial spends it, and a worker that finds none left stops. So the budget is trained exactly, and the worker whose
    trials happen to be short trains more of them instead of waiting idle for the other's last one (fixed shares of
    budget // workers did)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, folder: str | os.PathLike[str], count: int) -> TrialTickets:
        tickets = cls(Path(folder) / "tickets")
        tickets.path.write_text(str(count))
        return tickets

    def take(self) -> bool:
        """One ticket, if any is left."""
        with open(self.path, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
            left = int(f.read() or 0)
            if left <= 0:
                return False
            f.seek(0), f.truncate(), f.write(str(left - 1))
            return True

    def left(self) -> int:
        return int(self.path.read_text() or 0)


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


def check_latency_alone(config: StudyConfig, plan: WorkerPlan, gpus: int) -> None:
    """A latency measured while other trials share the device is not the network's latency: refuse that plan."""
    if config.needs_latency and plan.workers > max(gpus, 1):
        raise BadInputError(
            f"latency_ms is measured alone, and {plan.workers} worker processes would share "
            f"{'a GPU' if gpus else 'the CPU'}; a study with a latency objective or max_latency_ms runs one worker "
            "per device (drop --workers/--trials-per-gpu, or the latency from the study file)")


# GFLOPs per image below which single-thread workers train more images per hour than workers of 2 threads: two
# 1-thread workers against one 2-thread worker on 2 cores, bf16 channels_last, 1.16x to 1.50x from 0.006 to
# 1.5 GFLOPs, 1.05x at 4.0 (benchmarks/cpu_speed.py, README "CPU speed").
SMALL_NETWORK_GFLOPS = 2.0


@dataclass(frozen=True)
class WorkerPlan:
    """The worker processes a sweep command runs here: the GPU of each (None: the CPU), their threads, and why."""

    devices: tuple[int | None, ...]
    threads: int  # torch intra-op threads in each worker (inter-op: 1)
    why: str  # the rule that chose them, in words

    @property
    def workers(self) -> int:
        return len(self.devices)


def worker_plan(*, workers: int | None, trials_per_gpu: int | None, threads: int | None, cores: int, gpus: int,
                largest_gflops: float | None, needs_latency: bool, n_trials: int | None,
                idle: int | None = None) -> WorkerPlan:
    """The workers and threads of a sweep: as asked (`--workers`, `--trials-per-gpu`, `--threads`), else the rule.

    - A study that measures latency: one worker per device, all cores (latency is measured alone).
    - GPUs: one worker per GPU.
    - CPU, small networks (the study's max_gflops under SMALL_NETWORK_GFLOPS): one single-thread worker per physical
      core. A small network's convolutions keep a second thread poorly busy, while a second worker is a whole core.
    - CPU, larger networks (or no bound on GFLOPs): workers of 2 threads (4 on 8 cores or more), so that each
      convolution is split a few ways and several trials still run at once.
    Never more workers than trials, never more threads in all than physical cores, and no worker more threads than
    the `idle` cores that other processes leave (cpu.idle_cores): a thread that shares its core with another busy
    process holds up every parallel region of its worker.
    """
    def share(n: int) -> int:
        return threads or max(1, min(cores // n, idle or cores))

    if workers is not None or trials_per_gpu is not None:
        devices = tuple(plan_workers(workers, trials_per_gpu, gpus))
        return WorkerPlan(devices, share(len(devices)), "as asked")

    def capped(n: int) -> int:
        return max(1, min(n, n_trials)) if n_trials else max(1, n)

    if needs_latency:
        devices = tuple(plan_workers(None, None, gpus))
        return WorkerPlan(devices, share(1), "latency is measured alone: one worker")
    if gpus:
        devices = tuple(plan_workers(capped(gpus), None, gpus))
        return WorkerPlan(devices, share(len(devices)), f"one worker per GPU ({gpus})")
    if largest_gflops is not None and largest_gflops < SMALL_NETWORK_GFLOPS:
        n = capped(cores)
        return WorkerPlan((None,) * n, share(n), f"the study's networks are small (its max_gflops, "
                                                 f"{largest_gflops:g}, is under {SMALL_NETWORK_GFLOPS:g}), so one "
                                                 "single-thread worker per physical core")
    per = min(cores, 4 if cores >= 8 else 2)
    n = capped(cores // per)
    bound = "no max_gflops" if largest_gflops is None else f"max_gflops {largest_gflops:g}"
    return WorkerPlan((None,) * n, share(n), f"networks of {SMALL_NETWORK_GFLOPS:g} GFLOPs or more ({bound}), "
                                             f"workers of {per} threads")


def run_workers(
    study_file: str | None, location: StudyLocation, out: str, budget: int, plan: WorkerPlan, *,
    device: str, heartbeat: int, timeout_minutes: float | None, artifacts: str | None = None,
) -> SweepSummary:
    """Start one worker process per entry of `plan`, sharing `budget` as they go (TrialTickets), and add up their
    summaries.

    The caller has made the study (and enqueued its baselines) already; the workers join it. Each worker writes
    its own summary to a JSON file beside the tickets (data, not a printout to parse), so the total counts this
    command's trials only, never another command's on the same study.
    """
    folder = tempfile.mkdtemp(prefix="resnet-bench-tickets-")
    try:
        return _run_workers(study_file, location, out, TrialTickets.create(folder, budget), budget, plan,
                            device=device, heartbeat=heartbeat, timeout_minutes=timeout_minutes,
                            artifacts=artifacts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_workers(
    study_file: str | None, location: StudyLocation, out: str, tickets: TrialTickets, budget: int,
    plan: WorkerPlan, *, device: str, heartbeat: int, timeout_minutes: float | None, artifacts: str | None,
) -> SweepSummary:
    started = time.perf_counter()
    workers = []
    # `cuda:N` names one GPU: each worker sees only it (CUDA_VISIBLE_DEVICES=N), where it is cuda:0, so "cuda".
    named = device.split(":")[1] if device.startswith("cuda:") else None
    for i, gpu in enumerate(plan.devices[:budget]):
        command = [sys.executable, "-m", "resnet_bench", "sweep", *([study_file] if study_file else []),
                   "--storage", location.storage, "--study-name", location.name, "--out", out,
                   "--n-trials", str(budget), "--tickets", str(tickets.path), "--device", "cuda" if named else device,
                   "--threads", str(plan.threads), "--heartbeat", str(heartbeat), "--worker-index", str(i + 1),
                   "--summary", str(tickets.path.parent / f"summary-{i + 1}.json")]
        if timeout_minutes:
            command += ["--timeout", str(timeout_minutes)]
        if artifacts:
            command += ["--artifacts", artifacts]
        env = dict(os.environ, **{WORKER_ENV: str(i + 1)})
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = named if named is not None else str(gpu)
        # A worker's stdout joins the parent's stderr: the parent's stdout carries its results only (--format json).
        workers.append(subprocess.Popen(command, env=env, stdout=2))
    try:
        for w in workers:
            w.wait()
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them mark their trials failed
        for w in workers:
            w.wait()
        raise
    codes = [w.returncode for w in workers]
    if any(code == EXIT_INTERRUPTED for code in codes):
        raise KeyboardInterrupt
    if any(codes):
        raise RuntimeError(f"{sum(1 for c in codes if c)} of {len(codes)} workers failed (exit codes {codes})")
    parts = [SweepSummary.read(tickets.path.parent / f"summary-{i + 1}.json") for i in range(len(workers))]
    return SweepSummary.combine(parts, seconds=time.perf_counter() - started,
                                stopped=f"{' and '.join(sorted({p.stopped for p in parts}))} ({len(workers)} workers)")
