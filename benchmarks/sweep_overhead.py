"""What a sweep costs beyond training: sampling, cost (fvcore), storage, per trained trial.

Runs the first trials of a study (default: the quickstart) into a fresh SQLite storage and reports,
from the command's own wall time, everything that is not the training call itself:

    python benchmarks/sweep_overhead.py [--study quickstart] [--n-trials 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from resnet_bench.search.config import load_study_file
from resnet_bench.search.sweep import Sweep, record_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="quickstart")
    parser.add_argument("--n-trials", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    config = load_study_file(args.study)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        sweep = Sweep(config, storage=f"sqlite:///{Path(folder) / 'study.db'}", device=args.device)
        setup = time.perf_counter() - started
        summary = sweep.run(n_trials=args.n_trials)
        records = [record_of(t) for t in sweep.study.trials]
    trained = [r for r in records if r.status == "trained"]
    training = sum(r.trial_seconds - r.overhead_seconds for r in trained)
    overhead = summary.seconds - training
    per_trial = overhead / len(trained)
    mean_trial = summary.seconds / len(trained)
    figures = {
        "study": config.name, "trained": len(trained), "infeasible": summary.infeasible,
        "command_seconds": round(summary.seconds, 2), "setup_seconds": round(setup, 2),
        "seconds_per_trained_trial": round(mean_trial, 2),
        "overhead_seconds_per_trained_trial": round(per_trial, 3),
        "overhead_fraction": round(overhead / summary.seconds, 4),
        "trials": [{"number": i, "status": r.status, "trial_seconds": round(r.trial_seconds, 2),
                    "val_accuracy": r.val_accuracy, "gflops": r.gflops} for i, r in enumerate(records)],
    }
    print(f"{len(trained)} trained, {summary.infeasible} infeasible in {summary.seconds:.1f} s "
          f"(+{setup:.1f} s to open the study and load the data)")
    print(f"per trained trial: {mean_trial:.1f} s, of which {per_trial:.3f} s beyond training "
          f"({overhead / summary.seconds:.2%})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
