"""Training on a CPU that another heavy process shares: does the tool slow down in proportion, or by far more?

    python benchmarks/cpu_contention.py [--seconds 4] [--network resnet20]

One network trains (bf16 channels_last, the fast recipe's batch of 64, random images: speed does not depend on
their values) in each setting, alone and then beside a busy process that keeps one core fully loaded (a pure
Python loop, which takes no lock and no memory bandwidth of note):
- one process of all the physical cores' threads (torch's own default, and this release's single worker);
- one process of 1 thread;
- one 1-thread process per physical core (what `sweep` runs for small networks), their images per second added;
- one process whose threads the tool chooses (`cpu.use_threads`: the cores other processes leave idle).
In proportion means: with one of the cores taken, at least about (cores - 1) / cores of the speed alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_speed import NETWORKS  # noqa: E402

from resnet_bench.cpu import physical_cores  # noqa: E402

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


def trainers(name: str, count: int, threads: int | str, seconds: float, batch: int) -> float:
    """Images per second of `count` training processes of `threads` threads each, started together, added up."""
    command = [sys.executable, str(Path(__file__).parent / "cpu_speed.py"), "--child", name, str(threads),
               "--seconds", str(seconds), "--batch-size", str(batch)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    return sum(float(c.communicate()[0]) for c in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--network", default="resnet20", choices=list(NETWORKS))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    cores = physical_cores()
    settings = [(f"1 process x {cores} threads", 1, cores), ("1 process x 1 thread", 1, 1),
                (f"{cores} processes x 1 thread", cores, 1), ("1 process, threads: the tool's", 1, "auto")]
    print(f"{args.network}, {cores} physical cores, bf16 channels_last; images/s")
    for label, count, threads in settings:
        alone = trainers(args.network, count, threads, args.seconds, args.batch_size)
        hog = subprocess.Popen([sys.executable, "-c", HOG.format(seconds=args.seconds * 4 + 30)])
        time.sleep(0.5)
        try:
            shared = trainers(args.network, count, threads, args.seconds, args.batch_size)
        finally:
            hog.kill()
            hog.wait()
        print(f"{label:28} alone {alone:8.1f}   beside a busy core {shared:8.1f}   {shared / alone:.2f} of alone",
              flush=True)


if __name__ == "__main__":
    main()
