"""How long the commands take to start, beside the imports they could have paid for.

Runs each command several times, interleaved so that the machine's load falls on all of them alike,
and prints the medians and the differences to the baselines:

    resnet-bench sweep                                   # once: the study that `report` reads
    python benchmarks/cli_startup.py [--runs 7] [--storage sqlite:///reports/quickstart/study.db]
    python benchmarks/cli_startup.py --code /path/to/another/checkout   # the same, for another version's code

`report` reads a study and writes its tables, charts and page; `import torch` beside it is what the report
would pay if it imported torch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--storage", default=f"sqlite:///{Path('reports/quickstart/study.db').resolve()}",
                        help="the study that `report` reads (default: the quickstart's, made by resnet-bench sweep)")
    parser.add_argument("--code", help="a checkout whose resnet_bench to time instead of the installed one")
    args = parser.parse_args()
    if args.storage.startswith("sqlite:///") and not Path(args.storage.removeprefix("sqlite:///")).is_file():
        sys.exit(f"{args.storage} does not exist: run `resnet-bench sweep` first, or give --storage")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (args.code, os.environ.get("PYTHONPATH")) if p))
    out = tempfile.mkdtemp()
    bench = [sys.executable, "-m", "resnet_bench"]
    commands = {
        "baseline: import torch, torchvision, fvcore": [sys.executable, "-c", "import torch, torchvision, fvcore"],
        "baseline: import torch": [sys.executable, "-c", "import torch"],
        "resnet-bench profile resnext50_32x4d": [*bench, "profile", "resnext50_32x4d"],
        "resnet-bench models": [*bench, "models"],
        "resnet-bench report": [*bench, "report", "--storage", args.storage, "--out", out],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            start = time.perf_counter()
            # Run outside the repository: `python -m` puts the working folder first on sys.path.
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=out)
            seconds[name].append(time.perf_counter() - start)
    baseline = statistics.median(seconds[next(iter(commands))])
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
