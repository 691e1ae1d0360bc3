"""The search at equal compute: anytime hypervolume of every strategy, replayed on the recorded benchmark.

    python benchmarks/race.py [--table benchmarks/bench_space.json] [--seeds 20] [--workers 4]
                              [--png race.png] [--json race.json] [--rules]

Each strategy searches the space of `studies/bench_space.toml` on the recorded curves of seed 0
(resnet_bench.search.replay: Optuna's real samplers on an in-memory study, 4 simulated workers, each epoch its
recorded seconds) until it has spent as many training seconds as training every network of the table once
("train everything"). At 10%, 20%, ..., 100% of that budget it reads the hypervolume of the front of the trials
trained to the full budget (the report's: (validation accuracy, GFLOPs) from (0, 0.05)); mean and standard
deviation over the replay seeds (the sampler's seed). Strategies: random, TPE and NSGA-II, each without early
stopping, with the sweep's MO-ASHA at its defaults (rung estimate and promotion rule), with it and revival (a
stopped network proposed again trains on from its rung when it now ranks in its rung's top), and with it in 2 and 3
brackets (asynchronous Hyperband: some trials judged from a later rung, or never); Syne Tune's MOASHA with
its random searcher (random proposals), as shipped and with its ranking repaired (benchmarks/mo_asha.py says
how), when syne-tune is installed (`pip install '.[bench]'`; skipped with a message otherwise).

A network the table does not hold (a recording stopped before the grid's end) is refused when proposed, as an
infeasible one would be. `--rules` also races, with the random sampler (the proposals the same for every rule),
every promotion rule and rung estimate: what the defaults are chosen from (README, "The search at equal
compute"; on 216 networks the TPE rows take about 5 min each on one core).
`--only "tpe + MO-ASHA|random + MO-ASHA" --merge race.json` races
these rows again (after a change of the defaults, say) and takes the others from an earlier run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import emit

from resnet_bench.estimates import DEFAULT_RUNG_ESTIMATE, RUNG_ESTIMATES
from resnet_bench.search.config import load_study_file
from resnet_bench.search.early_stopping import DEFAULT_PROMOTION_RULE, PROMOTION_RULES
from resnet_bench.search.replay import ReplaySettings, curves_of_table, replay, train_everything

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TABLE = Path(__file__).resolve().parent / "bench_space.json"
FRACTIONS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class SyneTuneStopper:
    """Syne Tune's MOASHA behind the replay's two stopper methods, fed every epoch as its Tuner feeds it."""

    def __init__(self, rule: Any) -> None:
        self.rule, self.added = rule, set()

    def is_rung(self, epoch: int, trial: Any = None) -> bool:
        return True  # it sees every epoch and decides itself

    def should_stop(self, study: Any, trial: Any, epoch: int, values: list[float]) -> bool:
        if trial.number not in self.added:
            self.added.add(trial.number)
            self.rule.add(trial.number)
        return not self.rule.result(trial.number, epoch, list(values))


def strategies(config: Any, rules: bool) -> dict[str, dict[str, Any]]:
    """name -> ReplaySettings fields (and a stopper factory for Syne Tune)."""
    out: dict[str, dict[str, Any]] = {}
    for sampler in ("tpe", "nsga2", "random"):
        out[f"{sampler}"] = {"sampler": sampler, "early_stopping": False}
        out[f"{sampler} + MO-ASHA"] = {"sampler": sampler, "early_stopping": True}
        out[f"{sampler} + MO-ASHA, revival"] = {"sampler": sampler, "early_stopping": True, "revive": True}
        for brackets in (2, 3):  # asynchronous Hyperband: some trials judged from the second rung, or never
            out[f"{sampler} + MO-ASHA, {brackets} brackets"] = {"sampler": sampler, "early_stopping": True,
                                                                 "brackets": brackets}
    if rules:
        for rule in PROMOTION_RULES:
            for estimate in RUNG_ESTIMATES:
                out[f"random + MO-ASHA {rule}, {estimate}"] = {
                    "sampler": "random", "early_stopping": True, "promotion": rule, "rung_estimate": estimate}
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import mo_asha

        if mo_asha.syne_tune_version() is None:
            raise ImportError
        epochs = 6
        for label, ranks in (("Syne Tune MOASHA", False), ("Syne Tune MOASHA, ranks repaired", True)):
            make = mo_asha.syne_tune_rule(config, epochs, ranks=ranks)
            out[label] = {"sampler": "random", "early_stopping": False,
                          "stopper": lambda make=make: SyneTuneStopper(make())}
    except ImportError:
        log("Syne Tune skipped: `import syne_tune` failed (pip install '.[bench]' to add it)")
    return out


def race(table: dict[str, Any], seeds: int, workers: int, rules: bool, only: set[str] | None = None,
         earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    config = load_study_file(REPO / "studies" / "bench_space.toml")
    config = dataclasses.replace(config, min_epochs=1, reduction_factor=3)
    curves = curves_of_table(table, "0")
    everything_seconds, everything_hv = train_everything(curves, config)
    figures: dict[str, Any] = {
        "table": {"networks": len(curves), "exported": table.get("exported"), "machine": table.get("machine")},
        "train_everything": {"seconds": everything_seconds, "hypervolume": everything_hv},
        "workers": workers, "seeds": seeds, "fractions": list(FRACTIONS),
        "defaults": {"rung_estimate": DEFAULT_RUNG_ESTIMATE, "promotion": DEFAULT_PROMOTION_RULE}, "strategies": {},
    }
    for name, options in strategies(config, rules).items():
        if only is not None and name not in only:
            if earlier is not None and name in earlier.get("strategies", {}):
                figures["strategies"][name] = earlier["strategies"][name]  # the same table and seeds: the same row
            continue
        started = time.perf_counter()
        make = options.pop("stopper", None)
        runs = []
        for seed in range(seeds):
            settings = ReplaySettings(seed=seed, workers=workers, budget_seconds=everything_seconds, skip_missing=True,
                                      **{"rung_estimate": DEFAULT_RUNG_ESTIMATE, "promotion": DEFAULT_PROMOTION_RULE,
                                         **options})
            runs.append(replay(curves, config, settings, stopper=make() if make else None))
        hv = np.array([[r.hypervolume_at(f * everything_seconds) for f in FRACTIONS] for r in runs])
        figures["strategies"][name] = {
            "mean": hv.mean(axis=0).tolist(), "std": hv.std(axis=0, ddof=1).tolist() if seeds > 1 else [0.0] * 10,
            "final": [r.anytime[-1].hypervolume if r.anytime else 0.0 for r in runs],
            "anytime": [[(p.seconds, p.hypervolume) for p in r.anytime] for r in runs],
            "full": float(np.mean([r.full for r in runs])), "stopped": float(np.mean([r.stopped for r in runs])),
        }
        log(f"{name}: {time.perf_counter() - started:.1f} s for {seeds} seeds")
    # The target of the default: TPE without early stopping's final hypervolume (per seed), and how many training
    # seconds each strategy takes to reach it, against TPE without early stopping's own.
    reference = figures["strategies"]["tpe"]
    for name, f in figures["strategies"].items():
        ratios = []
        for seed in range(seeds):
            target = reference["final"][seed]
            mine = next((s for s, h in f["anytime"][seed] if h >= target - 1e-12), np.inf)
            theirs = next((s for s, h in reference["anytime"][seed] if h >= target - 1e-12), np.inf)
            ratios.append(theirs / mine if np.isfinite(mine) else 0.0)
        f["less_training_to_tpe_final"] = {"median": float(np.median(ratios)), "reached": float(np.mean(
            [r > 0 for r in ratios]))}
    return figures


def print_table(figures: dict[str, Any]) -> None:
    everything = figures["train_everything"]
    print(f"{figures['table']['networks']} networks; train everything: {everything['seconds']:,.0f} s, hypervolume "
          f"{everything['hypervolume']:.6f}; {figures['workers']} workers, {figures['seeds']} seeds; defaults: "
          f"{figures['defaults']}")
    print("| strategy | " + " | ".join(f"{int(f * 100)}%" for f in FRACTIONS) +
          " | to TPE's final: less training, median (reached) |")
    print("| --- |" + " ---: |" * (len(FRACTIONS) + 1))
    for name, f in figures["strategies"].items():
        cells = [f"{m:.5f} ± {s:.5f}" for m, s in zip(f["mean"], f["std"], strict=True)]
        less = f["less_training_to_tpe_final"]
        print(f"| {name} | " + " | ".join(cells) + f" | {less['median']:.2f}x ({less['reached']:.0%}) |")


def plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    x = np.array(FRACTIONS) * 100
    for name, f in figures["strategies"].items():
        if name.startswith("random + MO-ASHA "):
            continue  # the rules' race is a table, not a line each
        mean, std = np.array(f["mean"]), np.array(f["std"])
        ax.plot(x, mean, label=name, linestyle="-" if "MO-ASHA" in name or "Syne" in name else "--")
        ax.fill_between(x, mean - std, mean + std, alpha=0.12)
    ax.axhline(figures["train_everything"]["hypervolume"], color="black", linewidth=0.8, label="train everything")
    ax.set_xlabel("training seconds spent, % of training every network once")
    ax.set_ylabel("hypervolume of the full-budget front")
    ax.set_title(f"Anytime hypervolume, mean ± sd over {figures['seeds']} seeds, {figures['workers']} workers")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rules", action="store_true", help="race every promotion rule and rung estimate too")
    parser.add_argument("--png", type=Path, default=Path("race.png"))
    parser.add_argument("--json")
    parser.add_argument("--only", help="race only these strategies (names as in the table, separated by |)")
    parser.add_argument("--merge", type=Path, help="with --only: take the other strategies' rows from this earlier "
                        "--json of the same table, seeds and workers (a row depends on nothing else)")
    args = parser.parse_args()
    earlier = json.loads(args.merge.read_text()) if args.merge else None
    if earlier is not None and (earlier["seeds"], earlier["workers"]) != (args.seeds, args.workers):
        parser.error(f"--merge {args.merge} raced {earlier['seeds']} seeds on {earlier['workers']} workers")
    only = {name.strip() for name in args.only.split("|")} if args.only else None
    figures = race(json.loads(args.table.read_text()), args.seeds, args.workers, args.rules, only, earlier)
    print_table(figures)
    plot(figures, args.png)
    log(f"wrote {args.png}")
    emit({k: v for k, v in figures.items()}, args.json)


if __name__ == "__main__":
    main()
