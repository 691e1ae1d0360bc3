"""Which sampler learns within a small budget: hypervolume of the (val_accuracy, GFLOPs) front after N trials.

Runs the quickstart space with each sampler and seed, trained for one epoch per candidate (to keep the
measurement affordable on a CPU), and reports the exact hypervolume (the report's, from moocore) of the front of
trained trials against the reference point (val_accuracy 0, GFLOPs = the study's max_gflops), after every trial:

    python benchmarks/samplers.py [--n-trials 16] [--seeds 0 1] [--out samplers.json]

NSGA-II is run with a population of 8: with Optuna's default of 50 its first 50 trials are its random
first generation, so on budgets this small it is random search by construction.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from resnet_bench.pareto import hypervolume
from resnet_bench.search.config import load_study_file
from resnet_bench.search.domains import Fixed
from resnet_bench.search.sweep import Sweep, record_of

VARIANTS = {"tpe": ("tpe", {"n_startup_trials": 5}), "nsga2-pop8": ("nsga2", {"population_size": 8}),
            "random": ("random", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out")
    args = parser.parse_args()
    base = load_study_file("quickstart")
    max_gflops = base.constraints["max_gflops"]
    results: dict[str, dict[int, list[float]]] = {}
    for label, (sampler, options) in VARIANTS.items():
        for seed in args.seeds:
            config = dataclasses.replace(
                base, name=f"{label}-{seed}", seed=seed, sampler=sampler, sampler_options=options, baselines=(),
                recipe={**base.recipe, "epochs": Fixed(1)},
            )
            with tempfile.TemporaryDirectory() as folder:
                sweep = Sweep(config, storage=f"sqlite:///{Path(folder) / 's.db'}", device="cpu")
                sweep.run(n_trials=args.n_trials)
                curve, points = [], []
                for trial in sweep.study.trials:
                    r = record_of(trial)
                    if r.status == "trained":
                        points.append((r.val_accuracy, r.gflops))
                        curve.append(hypervolume(points, (0.0, max_gflops), ["maximize", "minimize"]))
            results.setdefault(label, {})[seed] = curve
            print(f"{label:11s} seed {seed}: hypervolume after {len(curve)} trained trials {curve[-1]:.5f}; "
                  f"after 8: {curve[min(7, len(curve) - 1)]:.5f}", flush=True)
    summary = {label: sum(c[-1] for c in curves.values()) / len(curves) for label, curves in results.items()}
    print(json.dumps({"final_hypervolume_mean": summary, "curves": results}))
    if args.out:
        Path(args.out).write_text(json.dumps({"final_hypervolume_mean": summary, "curves": results}, indent=1))


if __name__ == "__main__":
    main()
