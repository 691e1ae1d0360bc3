"""Is the replay honest? A real sweep of the recorded benchmark's space against the replay of the same seed.

    python benchmarks/live_check.py run [--out reports/live] [--seed 0] [--threads 1]
    python benchmarks/live_check.py compare [--out reports/live] [--json benchmarks/live_check.json]

`run` replays first (resnet_bench.search.replay, on benchmarks/bench_space.json, one simulated worker, the study's
default search: TPE, MO-ASHA with its default rung estimate and promotion rule) to learn how many trials it trains
(to the end or stopped) before its sampler proposes nothing new; then it runs `resnet-bench sweep` for real on the
same space with the same settings and seed, one worker of one thread, for that many trials: a study file written
from studies/bench_space.toml (its sampler and recording options removed, early stopping on). Run again, the sweep
resumes. One worker makes the comparison exact: the order of trials does not depend on how long each took, so the
real sweep and the replay propose the same networks and take the same decisions as long as the trained accuracies
equal the recorded ones.

`compare` reads the real study and replays again for the same number of trials, twice: on the recorded values (as
the race does) and on the values the real sweep measured (its epochs replace the table's for the networks it
trained): trial by trial, the network proposed, the epochs trained, the decision at each rung, the accuracy measured
against the recorded one; then the hypervolume of the front (the report's: trials trained to the end only) and the
training seconds of both. The first replay tells whether the table's numbers are the ones a sweep measures; the
second, whether the replay's logic is the sweep's. Run on purpose, never in the tests.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STUDY_FILE = REPO / "studies" / "bench_space.toml"
DEFAULT_TABLE = Path(__file__).resolve().parent / "bench_space.json"
NAME = "bench_space-live"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def live_study_text(seed: int, n_trials: int) -> str:
    """studies/bench_space.toml as a user searches it: the default sampler, early stopping at its defaults, nothing
    recorded beyond what a sweep keeps."""
    text = STUDY_FILE.read_text(encoding="utf-8")
    text = text.replace('name = "bench_space"', f'name = "{NAME}"', 1).replace("\nseed = 0\n", f"\nseed = {seed}\n", 1)
    about = "The recorded benchmark's space searched as a user would (benchmarks/live_check.py)."
    text = re.sub(r'\ndescription = "[^"]*"', f'\ndescription = "{about}"', text)
    text = re.sub(r"\ncurves = true[^\n]*", "", text)
    text = re.sub(r"\nrecord_estimates = true[^\n]*", "", text)
    text = re.sub(r"\n\[sampler\]\nname = [^\n]*\n", "\n", text)
    text = re.sub(r"\nn_trials = \d+[^\n]*", f'\nn_trials = {n_trials}\nearly_stopping = "mo-asha"', text)
    return text


def replayed(seed: int, max_trials: int | None, measured: dict[str, list[dict[str, Any]]] | None = None
             ) -> tuple[Any, Any]:
    """The replay of the live study's search on the recorded table; with `measured` (spec -> the epochs a live run
    measured), those epochs replace the recorded ones: the replay then reads the numbers the sweep read."""
    import dataclasses
    import tomllib

    from resnet_bench.search.config import parse_study
    from resnet_bench.search.replay import ReplaySettings, curves_of_table, replay

    config = parse_study(tomllib.loads(live_study_text(seed, 1)))
    table = json.loads(DEFAULT_TABLE.read_text(encoding="utf-8"))
    curves = curves_of_table(table, "0")
    if measured:
        curves = [dataclasses.replace(c, history=tuple({**h, **measured[c.spec][i]} if i < len(measured[c.spec])
                                                       else h for i, h in enumerate(c.history)))
                  if c.spec in measured else c for c in curves]
    settings = ReplaySettings(sampler=config.sampler, seed=seed, workers=1, early_stopping=True,
                              rung_estimate=config.rung_estimate, promotion=config.promotion,
                              min_epochs=config.min_epochs, reduction_factor=config.reduction_factor,
                              brackets=config.brackets, max_trials=max_trials)
    return replay(curves, config, settings), config


def run(args: argparse.Namespace) -> None:
    result, _ = replayed(args.seed, None)
    trials = result.full + result.stopped
    log(f"the replay of seed {args.seed} trains {trials} trials ({result.full} to the end, {result.stopped} stopped) "
        f"in {result.seconds:,.0f} s of training before its sampler proposes nothing new")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.toml"
    path.write_text(live_study_text(args.seed, trials), encoding="utf-8")
    command = [sys.executable, "-m", "resnet_bench", "sweep", str(path), "--out", str(args.out), "--device", "cpu",
               "--workers", "1", "--threads", str(args.threads)]
    log(" ".join(command))
    subprocess.run(command, check=True)


def compare(args: argparse.Namespace) -> None:
    import optuna

    from resnet_bench.search.records import STOPPED, TRAINED
    from resnet_bench.search.storage import locate_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=NAME, storage=locate_study(NAME, out=args.out).storage)
    live = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    spent = sum(1 for t in live if t.user_attrs.get("status") in (TRAINED, STOPPED))
    table = json.loads(DEFAULT_TABLE.read_text(encoding="utf-8"))
    recorded = {n["spec"]: n["runs"]["0"] for n in table["networks"] if "0" in n["runs"]}
    measured = {t.user_attrs["spec"]: [{k: h[k] for k in ("val_accuracy", "train_loss", "seconds")}
                                       for h in t.user_attrs.get("history") or []]
                for t in live if t.user_attrs.get("status") in (TRAINED, STOPPED)}
    figures = {"command": "python benchmarks/live_check.py run && python benchmarks/live_check.py compare",
               "seed": args.seed, "trials": len(live)}
    for values, extra in (("recorded", None), ("measured", measured)):
        result, config = replayed(args.seed, spent, extra)
        figures[values] = agreement(live, result, recorded, config)
        say(values, figures[values], args.seed)
    figures["conditions"] = {k: live[-1].user_attrs.get(k) for k in (
        "device", "threads", "precision", "memory_format", "torch_version")} if live else {}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")


def agreement(live: list[Any], result: Any, recorded: dict[str, Any], config: Any) -> dict[str, Any]:
    """Trial by trial, how far the replay did what the real sweep did; then both searches' totals."""
    from resnet_bench.pareto import hypervolume
    from resnet_bench.search.records import DUPLICATE, INFEASIBLE, STOPPED, TRAINED

    decisions = {(n, e): goes for n, e, goes in result.decisions}
    same_network = same_epochs = same_decisions = judged = 0
    first_difference, accuracy_gaps, rows = None, [], []
    for trial in live:
        attrs = trial.user_attrs
        status, spec = attrs.get("status", ""), attrs.get("spec", "")
        mine = result.proposed.get(trial.number)
        network_agrees = (mine == spec) if status != INFEASIBLE else mine == ""
        same_network += network_agrees
        if not network_agrees and first_difference is None:
            first_difference = trial.number
        epochs = attrs.get("epochs") if status in (TRAINED, STOPPED) else None
        if status in (TRAINED, STOPPED):
            same_epochs += result.epochs.get(trial.number) == epochs
            for epoch in (attrs.get("rungs") or {}):
                judged += 1
                goes = status == TRAINED or int(epoch) < epochs
                same_decisions += decisions.get((trial.number, int(epoch))) == goes
            run_recorded = recorded.get(spec)
            if run_recorded is not None:
                accuracy_gaps.append(abs(attrs["val_accuracy"] - run_recorded["val_accuracy"][epochs - 1]))
        rows.append({"number": trial.number, "status": status, "spec": spec, "epochs": epochs,
                     "replay_spec": mine, "replay_epochs": result.epochs.get(trial.number),
                     "train_seconds": attrs.get("train_seconds")})
    metrics = [o.metric for o in config.objectives]
    directions = [o.direction for o in config.objectives]
    reference = [config.reference_point[m] for m in metrics]
    front = [[t.user_attrs[m] for m in metrics] for t in live if t.user_attrs.get("status") == TRAINED]
    live_seconds = sum(t.user_attrs.get("train_seconds") or 0.0 for t in live
                       if t.user_attrs.get("status") in (TRAINED, STOPPED))
    return {
        "live": {"trained": sum(r["status"] == TRAINED for r in rows),
                 "stopped": sum(r["status"] == STOPPED for r in rows),
                 "duplicates": sum(r["status"] == DUPLICATE for r in rows),
                 "infeasible": sum(r["status"] == INFEASIBLE for r in rows),
                 "hypervolume": hypervolume(front, reference, directions) if front else 0.0,
                 "train_seconds": live_seconds},
        "replay": {"trained": result.full, "stopped": result.stopped, "duplicates": result.duplicates,
                   "hypervolume": result.anytime[-1].hypervolume if result.anytime else 0.0,
                   "train_seconds": result.seconds},
        "agreement": {"same_network": same_network, "first_difference": first_difference,
                      "same_epochs": same_epochs, "rung_decisions": judged, "same_decisions": same_decisions,
                      "accuracy_gap_max": max(accuracy_gaps, default=None),
                      "accuracy_equal": sum(g == 0 for g in accuracy_gaps), "accuracies_compared": len(accuracy_gaps)},
        "trials_compared": rows,
    }


def say(values: str, figures: dict[str, Any], seed: int) -> None:
    agreement, a, b = figures["agreement"], figures["live"], figures["replay"]
    first = agreement["first_difference"]
    print(f"the replay on the {values} values, {len(figures['trials_compared'])} trials of seed {seed}: the same "
          f"network proposed in {agreement['same_network']} (first difference: "
          f"{'none' if first is None else f'trial {first}'}); the same epochs trained in {agreement['same_epochs']} "
          f"of {a['trained'] + a['stopped']}; the same decision at {agreement['same_decisions']} of "
          f"{agreement['rung_decisions']} rungs; the live accuracy equal to the recorded one in "
          f"{agreement['accuracy_equal']} of {agreement['accuracies_compared']} (largest gap "
          f"{agreement['accuracy_gap_max']})")
    print(f"  real sweep: {a['trained']} to the end, {a['stopped']} stopped, {a['duplicates']} duplicates, "
          f"hypervolume {a['hypervolume']:.6f}, {a['train_seconds']:,.0f} s of training")
    print(f"  replay:     {b['trained']} to the end, {b['stopped']} stopped, {b['duplicates']} duplicates, "
          f"hypervolume {b['hypervolume']:.6f}, {b['train_seconds']:,.0f} s of training")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "compare"):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, default=Path("reports/live"))
        p.add_argument("--seed", type=int, default=0)
        if name == "run":
            p.add_argument("--threads", type=int, default=1)
        else:
            p.add_argument("--json")
    args = parser.parse_args()
    {"run": run, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()
