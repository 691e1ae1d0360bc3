"""Worker processes on one machine sharing one study: which device each gets, its threads, and what they report.

Each worker is a process of this package (multiprocessing, spawned) that joins the study the parent made, by its
storage and name, which is Optuna's own distributed mode. Workers share the command's budget as they go
(TrialTickets) and send their parent what they do as data (WorkerEvents): each trial's start, epochs, batches and
end, then their summary. The parent draws them; a worker draws nothing.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import queue
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

from resnet_bench.cpu import use_threads
from resnet_bench.errors import EXIT_FAILURE, EXIT_INTERRUPTED, BadInputError, DiskFullError
from resnet_bench.search.config import StudyConfig
from resnet_bench.search.storage import StudyLocation
from resnet_bench.search.sweep import Sweep, SweepSummary

WORKER_ENV = "RESNET_BENCH_WORKER"  # set in a worker process: its index, from 1


class TrialTickets:
    """The trained-trial budget of one command, shared by its workers as they go: a count of the tickets left,
    taken one at a time under a lock that every worker process shares. A worker holds one ticket while it proposes
    and trains; a trained (or failed) trial spends it, and a worker that finds none left stops. So the budget is
    trained exactly, and the worker whose trials happen to be short trains more of them instead of waiting idle for
    the other's last one (fixed shares of budget // workers did)."""

    def __init__(self, count: int, context: Any = None) -> None:
        self.count = (context or multiprocessing.get_context("spawn")).Value("q", count)  # a lock of its own

    def take(self) -> bool:
        """One ticket, if any is left."""
        with self.count.get_lock():
            if self.count.value <= 0:
                return False
            self.count.value -= 1
            return True

    def left(self) -> int:
        return int(self.count.value)


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


class TrialListener(Protocol):
    """What the parent does with its workers' events: the Sweep's callbacks, each with the worker that sent it."""

    def trial_start(self, number: int, spec_line: str, worker: int = 0) -> None: ...
    def epoch(self, number: int, metrics: Any, epochs: int, worker: int = 0) -> None: ...
    def batch(self, epoch: int, step: int, steps: int, loss: Any, worker: int = 0) -> None: ...
    def trial_end(self, trial: Any, worker: int = 0) -> None: ...


@dataclass(frozen=True)
class WorkerJob:
    """What one worker process is asked to do: plain data, sent to the process as it starts."""

    index: int  # from 1: the worker's name in its lines and the seed of its sampler
    config: StudyConfig
    location: StudyLocation
    device: str  # as the worker sees it: "cuda" where it sees one GPU only
    visible_gpu: str | None  # its CUDA_VISIBLE_DEVICES (None: unchanged)
    threads: int
    n_trials: int  # the worker's cap; the tickets decide how many it trains
    heartbeat: int
    timeout_minutes: float | None
    artifacts: str | None
    batches: bool  # whether the parent draws batches (else none is read from the device to be sent)


class WorkerEvents:
    """A worker's side of the event queue: the Sweep's callbacks, sent to the parent as plain values.

    A batch's loss is read from the device (a sync) and sent a few times a second at most, and only when the parent
    draws it."""

    BATCH_SECONDS = 0.25

    def __init__(self, index: int, events: Any, batches: bool) -> None:
        self.index, self.events, self.batches, self.last_batch = index, events, batches, 0.0

    def send(self, kind: str, *values: Any) -> None:
        self.events.put((self.index, kind, values))

    def callbacks(self) -> dict[str, Any]:
        """The Sweep's keyword arguments that send its events."""
        return {"on_trial_start": lambda number, spec: self.send("trial_start", number, spec),
                "on_epoch": lambda number, metrics, epochs: self.send("epoch", number, metrics, epochs),
                "on_trial_end": lambda trial: self.send("trial_end", trial),
                "on_batch": self.batch if self.batches else None}

    def batch(self, epoch: int, step: int, steps: int, loss: Any) -> None:
        now = time.monotonic()
        if now - self.last_batch >= self.BATCH_SECONDS or step == steps:
            self.last_batch = now
            self.send("batch", epoch, step, steps, float(loss))


def work(job: WorkerJob, tickets: TrialTickets, events: Any) -> None:
    """The body of one worker process: join the study, train trials while tickets are left, send the summary."""
    os.environ[WORKER_ENV] = str(job.index)
    if job.visible_gpu is not None:  # before anything starts CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = job.visible_gpu
    os.dup2(2, 1)  # anything a worker prints joins stderr: the parent's stdout carries its results only
    faulthandler.enable()  # a worker that crashes says where, on stderr
    use_threads(job.threads)
    sender = WorkerEvents(job.index, events, job.batches)
    try:
        sweep = Sweep(job.config, job.location, device=job.device, worker=job.index, heartbeat_seconds=job.heartbeat,
                      artifacts=job.artifacts, **sender.callbacks())
        summary = sweep.run(n_trials=job.n_trials, timeout_minutes=job.timeout_minutes, take_ticket=tickets.take)
    except KeyboardInterrupt:  # the running trial is marked failed (Sweep); the parent is told by the exit code
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # the parent raises it again, as one line with its exit code
        kind = BadInputError if isinstance(exc, BadInputError) else DiskFullError if isinstance(
            exc, DiskFullError) else None
        sender.send("error", kind and kind.__name__, f"{type(exc).__name__}: {exc}" if kind is None else str(exc))
        sys.exit(EXIT_FAILURE)
    sender.send("summary", summary)


def worker_jobs(config: StudyConfig, location: StudyLocation, budget: int, plan: WorkerPlan, *, device: str,
                heartbeat: int, timeout_minutes: float | None, artifacts: str | None,
                batches: bool) -> list[WorkerJob]:
    """One job per worker of `plan` (never more workers than the budget's trials)."""
    # `cuda:N` names one GPU: each worker sees only it (CUDA_VISIBLE_DEVICES=N), where it is cuda:0, so "cuda".
    named = device.split(":")[1] if device.startswith("cuda:") else None
    return [WorkerJob(index=i + 1, config=config, location=location, device="cuda" if named else device,
                      visible_gpu=None if gpu is None else named if named is not None else str(gpu),
                      threads=plan.threads, n_trials=budget, heartbeat=heartbeat, timeout_minutes=timeout_minutes,
                      artifacts=artifacts, batches=batches)
            for i, gpu in enumerate(plan.devices[:budget])]


def run_workers(jobs: list[WorkerJob], budget: int, listener: TrialListener | None = None) -> SweepSummary:
    """Start one worker process per job, sharing `budget` as they go (TrialTickets); pass each event they send to
    `listener` as it comes, and add up their summaries.

    The caller has made the study (and enqueued its baselines) already; the workers join it. The total counts this
    command's trials only, never another command's on the same study."""
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state or threads inherited
    events, tickets = context.Queue(), TrialTickets(budget, context)
    processes = [context.Process(target=work, args=(job, tickets, events), name=f"resnet-bench worker {job.index}")
                 for job in jobs]
    for process in processes:
        process.start()
    summaries: dict[int, SweepSummary] = {}
    errors: dict[int, tuple[str | None, str]] = {}
    try:
        _relay(processes, events, listener, summaries, errors)
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them mark their trials failed
        _relay(processes, events, None, summaries, errors)
        raise
    codes = [process.exitcode for process in processes]
    if any(code == EXIT_INTERRUPTED for code in codes):
        raise KeyboardInterrupt
    if errors:  # the first worker's error, as that worker raised it: bad input (exit 2), a full disk, a failure
        worker, (kind, message) = min(errors.items())
        if kind is not None:
            raise {BadInputError.__name__: BadInputError, DiskFullError.__name__: DiskFullError}[kind](message)
        raise RuntimeError(f"worker {worker} of {len(jobs)} failed: {message}")
    if any(codes) or len(summaries) < len(processes):
        raise RuntimeError(f"{sum(1 for c in codes if c)} of {len(codes)} workers failed (exit codes {codes})")
    parts = [summaries[job.index] for job in jobs]
    return SweepSummary.combine(parts, seconds=time.perf_counter() - started,
                                stopped=f"{' and '.join(sorted({p.stopped for p in parts}))} ({len(jobs)} workers)")


def _relay(processes: list[Any], events: Any, listener: TrialListener | None, summaries: dict[int, SweepSummary],
           errors: dict[int, tuple[str | None, str]]) -> None:
    """Pass the workers' events to `listener` until every worker has ended and its last event is read."""
    while True:
        # A process flushes what it sent before it ends: once all had ended before this read, a read that finds
        # nothing means nothing is left.
        ended = not any(process.is_alive() for process in processes)
        try:
            worker, kind, values = events.get(timeout=0.2)
        except queue.Empty:
            if ended:
                for process in processes:
                    process.join()
                return
            continue
        if kind == "summary":
            summaries[worker] = values[0]
        elif kind == "error":
            errors[worker] = values
        elif listener is not None:
            getattr(listener, kind)(*values, worker=worker)
