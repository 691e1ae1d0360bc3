"""Worker processes on one machine sharing one study: which device each gets, its threads, and their summaries.

Each worker is a `resnet-bench sweep` process pointed at the same storage and study name, which is
Optuna's own distributed mode; this module only starts them here and adds up what they report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from resnet_bench.errors import BadInputError
from resnet_bench.search.config import StudyConfig
from resnet_bench.search.storage import StudyLocation
from resnet_bench.search.sweep import SweepSummary

WORKER_ENV = "RESNET_BENCH_WORKER"  # set in a worker process: its index, from 1
EXIT_INTERRUPTED = 130


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


def check_latency_alone(config: StudyConfig, plan: list[int | None], gpus: int) -> None:
    """A latency measured while other trials share the device is not the network's latency: refuse that plan."""
    if config.needs_latency and len(plan) > max(gpus, 1):
        raise BadInputError(
            f"latency_ms is measured alone, and {len(plan)} worker processes would share "
            f"{'a GPU' if gpus else 'the CPU'}; a study with a latency objective or max_latency_ms runs one worker "
            "per device (drop --workers/--trials-per-gpu, or the latency from the study file)")


def threads_per_worker(threads: int | None, workers: int) -> int:
    """CPU threads for each worker: as asked, else the machine's cores divided among the workers."""
    return threads or max(1, (os.cpu_count() or 1) // workers)


def run_workers(
    study_file: str | None, location: StudyLocation, out: str, budget: int, plan: list[int | None], *,
    device: str, threads: int | None, heartbeat: int, timeout_minutes: float | None,
) -> SweepSummary:
    """Start one worker process per entry of `plan`, each with its share of `budget`, and add up their summaries.

    The caller has made the study (and enqueued its baselines) already; the workers join it. Each worker prints
    its own summary as one JSON line, so the total counts this command's trials only, never another command's
    on the same study.
    """
    started = time.perf_counter()
    per_worker = threads_per_worker(threads, len(plan))
    workers = []
    for i, gpu in enumerate(plan):
        share = budget // len(plan) + (i < budget % len(plan))
        if share == 0:
            continue
        command = [sys.executable, "-m", "resnet_bench", "sweep", *([study_file] if study_file else []),
                   "--storage", location.storage, "--study-name", location.name, "--out", out,
                   "--n-trials", str(share), "--device", device, "--threads", str(per_worker),
                   "--heartbeat", str(heartbeat), "--worker-index", str(i + 1)]
        if timeout_minutes:
            command += ["--timeout", str(timeout_minutes)]
        env = dict(os.environ, **{WORKER_ENV: str(i + 1)})
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    try:
        outputs = [w.communicate()[0] for w in workers]
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them mark their trials failed
        for w in workers:
            w.wait()
        raise
    codes = [w.returncode for w in workers]
    if any(code == EXIT_INTERRUPTED for code in codes):
        raise KeyboardInterrupt
    if any(codes):
        raise RuntimeError(f"{sum(1 for c in codes if c)} of {len(codes)} workers failed (exit codes {codes})")
    parts = [SweepSummary(**json.loads(text.strip().splitlines()[-1])) for text in outputs]
    return SweepSummary.combine(parts, seconds=time.perf_counter() - started, stopped=f"budget ({len(workers)} workers)")
