"""How long `resnet-bench profile` and `resnet-bench models` take beyond importing torch, torchvision and fvcore.

Runs each command several times, interleaved so that the machine's load falls on all of them alike,
and prints the medians and the differences to the import baseline:

    python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "baseline: import torch, torchvision, fvcore": [sys.executable, "-c", "import torch, torchvision, fvcore"],
    "resnet-bench profile resnext50_32x4d": ["resnet-bench", "profile", "resnext50_32x4d"],
    "resnet-bench models": ["resnet-bench", "models"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if shutil.which("resnet-bench") is None:
        sys.exit("resnet-bench is not on PATH; pip install . first")
    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds[name].append(time.perf_counter() - start)
    baseline = statistics.median(seconds[next(iter(COMMANDS))])
    result = {}
    for name, runs in seconds.items():
        median = statistics.median(runs)
        result[name] = {"median_s": round(median, 3), "beyond_baseline_s": round(median - baseline, 3),
                        "ratio_to_baseline": round(median / baseline, 2), "runs": args.runs}
        print(f"{name:48s} median {median:6.3f} s   beyond baseline {median - baseline:+6.3f} s   "
              f"ratio {median / baseline:4.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
