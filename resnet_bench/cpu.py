"""What this CPU runs fast, and how many threads each process of the tool may use.

- **Native bf16.** A CPU multiplies bf16 matrices natively when it has AVX512-BF16 or AMX-BF16 (x86; what
  oneDNN dispatches bf16 convolutions to) or the BF16 extension (Arm). Elsewhere oneDNN emulates bf16 with fp32
  instructions and is slower than fp32, so `precision = "auto"` trains in bf16 only where the flags say the
  instructions exist *and* a short probe (a convolution's forward and backward in both precisions) confirms bf16
  is faster; the probe's answer is cached per machine and torch version.
- **Threads.** Every process the tool starts sets torch's intra-op and inter-op threads explicitly
  (`set_threads`), so K workers never run K x cores threads.

No torch at import: reading a study or a spec never needs it.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from resnet_bench.files import atomic_path

# /proc/cpuinfo flags of native bf16 matrix products: x86 (AVX512-BF16 dot products, AMX tiles) and Arm (BF16).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
PROBE_MIN_SPEEDUP = 1.1  # bf16 must be at least this much faster than fp32 in the probe to count as native


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (Linux); empty where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_name() -> str:
    """The CPU's model name, for the probe's cache and the records (platform's processor elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16() -> bool:
    """Whether this CPU trains faster in bf16 than in fp32: the flags, confirmed by a probe (cached)."""
    if not cpu_flags() & NATIVE_BF16_FLAGS and not _apple_bf16():
        return False
    return _cached_probe()


def _apple_bf16() -> bool:
    """Apple silicon M2 and later have the Arm BF16 extension (sysctl hw.optional.arm.FEAT_BF16)."""
    if platform.system() != "Darwin":
        return False

    try:
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.stdout.strip() == "1"


@functools.cache
def _cached_probe() -> bool:
    import torch

    key = f"{cpu_name()} | torch {torch.__version__}"
    path = _cache_dir() / "cpu.json"
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    if key in cache and isinstance(cache[key].get("bf16_speedup"), (int, float)):
        return cache[key]["bf16_speedup"] >= PROBE_MIN_SPEEDUP
    speedup = probe_bf16_speedup()
    cache[key] = {"bf16_speedup": round(speedup, 3)}
    try:  # a read-only home only costs the probe again next time; written whole, for workers starting at once
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    except OSError:
        pass
    return speedup >= PROBE_MIN_SPEEDUP


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "resnet-bench"


def probe_bf16_speedup(repeats: int = 5) -> float:
    """fp32 time over bf16 time of one 3x3 convolution's forward and backward (64 channels, 32x32, batch 32,
    channels_last), the median of `repeats` interleaved runs after a warm-up: about 0.2 s."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 64, 32, 32, generator=generator).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3, generator=generator).contiguous(memory_format=torch.channels_last)
    w.requires_grad_(True)

    def step(bf16: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = F.conv2d(x, w, padding=1)
        out.float().sum().backward()
        return time.perf_counter() - started

    step(False), step(True)  # warm-up: oneDNN picks and caches its kernels
    fp32, bf16 = [], []
    for _ in range(repeats):
        fp32.append(step(False))
        bf16.append(step(True))
    return statistics.median(fp32) / statistics.median(bf16)


# -- cores and threads ---------------------------------------------------------------------------------------

def physical_cores() -> int:
    """Physical cores this process may run on (logical CPUs in its affinity mask, less SMT siblings)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        logical = os.cpu_count() or 1
    siblings = _threads_per_core()
    return max(1, logical // siblings)


def _threads_per_core() -> int:
    try:
        text = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read_text()
    except OSError:
        return 1
    count = 0
    for part in text.strip().split(","):
        low, _, high = part.partition("-")
        count += int(high) - int(low) + 1 if high else 1
    return max(1, count)


def set_threads(threads: int) -> None:
    """Set this process's torch threads: `threads` intra-op, 1 inter-op (the tool runs one model at a time per
    process). Inter-op threads can be set once, before any parallel work; a later call leaves them as they are."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work has started
        pass


def idle_cores(seconds: float = 0.2) -> int:
    """Physical cores that other processes leave idle, sampled from /proc/stat over `seconds` (Linux); the
    physical cores where the kernel does not say. At least 1."""
    first = _cpu_times()
    if not first:
        return physical_cores()
    time.sleep(seconds)
    second = _cpu_times()
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:
        allowed = set(first)
    idle = 0.0
    for cpu in allowed & set(first) & set(second):
        (busy0, idle0), (busy1, idle1) = first[cpu], second[cpu]
        total = busy1 - busy0 + idle1 - idle0
        idle += (idle1 - idle0) / total if total > 0 else 1.0
    return max(1, min(physical_cores(), round(idle / _threads_per_core())))


def _cpu_times() -> dict[int, tuple[int, int]]:
    """Each logical CPU's busy and idle ticks (idle and iowait) since boot; empty where /proc/stat is not."""
    try:
        text = Path("/proc/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    times = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and len(fields) >= 5:
            ticks = [int(f) for f in fields[:8]]
            idle = ticks[3] + ticks[4]
            times[int(name[3:])] = (sum(ticks) - idle, idle)
    return times


def use_threads(threads: int | None) -> int:
    """Set this process's threads as asked, else to the physical cores that other processes leave idle; return
    the number: what every command that computes with torch calls first. Never more threads than idle cores:
    beside a process that keeps one of 2 cores busy, 2 threads trained resnet20 27x slower than alone (each
    parallel region waits for the thread that shares its core), 1 thread as fast as alone (README, "CPU speed")."""
    chosen = threads or idle_cores()
    set_threads(chosen)
    return chosen
