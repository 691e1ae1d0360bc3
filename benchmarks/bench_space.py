"""The recorded benchmark: every network of `studies/bench_space.toml` trained to the end, every epoch kept.

    python benchmarks/bench_space.py record [--out reports/bench] [--workers 2] [--threads 1] [--second-seed 64]
    python benchmarks/bench_space.py export [--out reports/bench] [--table benchmarks/bench_space.json]
    python benchmarks/bench_space.py estimates [--table benchmarks/bench_space.json] [--json estimates.json]

`record` trains with the tool itself: it makes the study, enqueues every network of the space's grid
(`search.space.grid`, in a fixed shuffled order, so that an interrupted recording is a random part of the space)
and runs `resnet-bench sweep` on it with the study's `record_estimates` (every rung estimate after every epoch) and
`curves`. It records a second seed first, for the first `--second-seed` networks of the same order (a copy of the
study file with `seed = 1`: its own weights, batch order and validation split), then the whole grid with seed 0.
Run again, it resumes: only what is not trained yet is enqueued (in the study, or in the committed table, so that
a recording spread over several machines or days goes on from the table), and a trial a killed worker held is
retried from its last epoch. `export` reads both studies into one compact JSON table (committed under benchmarks/);
`estimates` measures each rung estimate on it (Kendall's tau and Spearman's rho against the other seed's final
validation accuracy, at every epoch, with its extra seconds) and the noise ceiling between the two seeds.
Recording runs on purpose, never in the tests.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
STUDY_FILE = REPO / "studies" / "bench_space.toml"
DEFAULT_TABLE = Path(__file__).resolve().parent / "bench_space.json"
ORDER_SEED = 0  # the shuffled order of the grid


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed_file(out: Path, seed: int) -> Path:
    """The study file for a seed: the shipped one for seed 0, a copy with its seed and name changed otherwise."""
    if seed == 0:
        return STUDY_FILE
    text = STUDY_FILE.read_text(encoding="utf-8")
    text = text.replace('name = "bench_space"', f'name = "bench_space-seed{seed}"', 1).replace(
        "\nseed = 0\n", f"\nseed = {seed}\n", 1)
    path = out / f"bench_space-seed{seed}.toml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def ordered_grid(config: Any) -> list[dict[str, Any]]:
    from resnet_bench.search.space import grid

    points = grid(config)
    random.Random(ORDER_SEED).shuffle(points)
    return points


def _key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def load_table(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def recorded_params(table: dict[str, Any] | None, seed: int) -> set[tuple[tuple[str, Any], ...]]:
    """The networks the table holds a run of this seed for."""
    return {_key(n["space"]) for n in (table or {}).get("networks", []) if str(seed) in n["runs"]}


def record_seed(out: Path, seed: int, count: int | None, workers: int, threads: int,
                table: dict[str, Any] | None) -> None:
    """Enqueue what of the grid (its first `count` points) this seed's study has not trained, and sweep it."""
    import optuna

    from resnet_bench.search.config import load_study_file
    from resnet_bench.search.storage import locate_study
    from resnet_bench.search.study import open_study

    path = seed_file(out, seed)
    config = load_study_file(path)
    location = locate_study(config.name, out=out)
    location.make_folder()
    study = open_study(config, location.storage, config.name)
    points = ordered_grid(config)[:count]
    recorded = recorded_params(table, seed)
    for params in points:
        if _key(params) in recorded:  # in the committed table already: a later session goes on from there
            continue
        study.enqueue_trial(params, skip_if_exists=True)
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") == "trained")
    log(f"{config.name}: {len(points)} networks, {len(recorded & {_key(p) for p in points})} in the table, {done} "
        f"trained here, {waiting} queued")
    if waiting == 0:
        return
    command = [sys.executable, "-m", "resnet_bench", "sweep", str(path), "--out", str(out), "--device", "cpu",
               "--workers", str(workers), "--threads", str(threads), "--n-trials", str(waiting)]
    log(" ".join(command))
    subprocess.run(command, check=True)


def record(args: argparse.Namespace) -> None:
    started = datetime.datetime.now(datetime.UTC)
    table = load_table(args.table)
    record_seed(args.out, 1, args.second_seed, args.workers, args.threads, table)
    record_seed(args.out, 0, None, args.workers, args.threads, table)
    log(f"recorded from {started.isoformat(timespec='seconds')} to "
        f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")


# -- the table --------------------------------------------------------------------------------------------------

EPOCH_FIELDS = ("val_accuracy", "val_loss", "train_loss", "seconds", "ema_val_accuracy", "probe_val_accuracy",
                "ema_seconds", "probe_seconds", "test_error")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cpu": cpu, "cores": os.cpu_count()}


def export(args: argparse.Namespace) -> None:
    """One row per network: its spec, cost, and per seed its curves (lists over epochs)."""
    import optuna

    from resnet_bench.search.config import load_study_file
    from resnet_bench.search.records import TRAINED
    from resnet_bench.search.storage import locate_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = load_study_file(STUDY_FILE)
    before = load_table(args.table) or {}
    # What the table held already (an earlier session's recording) stays; the storages add to it.
    networks: dict[str, dict[str, Any]] = {n["spec"]: n for n in before.get("networks", [])}
    seeds, conditions = list(before.get("seeds", [])), dict(before.get("conditions", {}))
    for seed in (0, 1):
        name = config.name if seed == 0 else f"bench_space-seed{seed}"
        location = locate_study(name, out=args.out)
        if not (location.folder / "study.db").is_file():
            continue
        try:
            study = optuna.load_study(study_name=name, storage=location.storage)
        except KeyError:
            continue
        seeds = sorted({*seeds, seed})
        for trial in study.get_trials(deepcopy=False):
            attrs = trial.user_attrs
            if attrs.get("status") != TRAINED:
                continue
            row = networks.setdefault(attrs["spec"], {
                "spec": attrs["spec"], "params": attrs["params"], "gflops": attrs["gflops"],
                "space": {k: v for k, v in trial.params.items()}, "runs": {}})
            history = attrs["history"]
            row["runs"][str(seed)] = {
                **{f: [h.get(f) for h in history] for f in EPOCH_FIELDS},
                "test_accuracy": attrs["test_accuracy"], "trial": trial.number,
            }
            conditions[str(seed)] = {k: attrs.get(k) for k in ("recipe", "dataset", "val_size", "input_size",
                                                    "device", "threads", "precision", "memory_format", "torch_version",
                                                    "resnet_bench_version")}
    table = {
        "about": "benchmarks/bench_space.py: every network of studies/bench_space.toml, 6 epochs, every epoch kept",
        "command": "python benchmarks/bench_space.py record && python benchmarks/bench_space.py export",
        "study_file": STUDY_FILE.name, "seeds": seeds, "conditions": conditions, "machine": machine(),
        "exported": datetime.date.today().isoformat(), "objectives": [["val_accuracy", "maximize"],
                                                                      ["gflops", "minimize"]],
        "reference_point": [0.0, 0.05], "epoch_fields": list(EPOCH_FIELDS),
        "networks": sorted(networks.values(), key=lambda r: r["spec"]),
    }
    args.table.write_text(json.dumps(table, separators=(",", ":")) + "\n", encoding="utf-8")
    counts = {s: sum(1 for n in networks.values() if str(s) in n["runs"]) for s in seeds}
    log(f"wrote {args.table}: {len(networks)} networks, runs per seed {counts}")


# -- the estimates ----------------------------------------------------------------------------------------------

def kendall_tau(a: Any, b: Any) -> float:
    """Kendall's tau-b (the report's)."""
    from resnet_bench.report.stats import kendall_tau as tau

    return float(tau(a, b) or 0.0)


def spearman_rho(a: Any, b: Any) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (ties take their mean rank)."""
    import pandas as pd

    return float(pd.Series(a).rank().corr(pd.Series(b).rank()))


def estimates(args: argparse.Namespace) -> None:
    """Each rung estimate at every epoch, ranked against the final validation accuracy: of the same run (every
    network of a seed), and of the other seed's run (the networks recorded with both: what a rung must predict,
    free of the run's own noise); and the noise ceiling, one seed's final ranking against the other's."""
    from resnet_bench.estimates import RUNG_ESTIMATES, estimate_value, extra_seconds

    table = json.loads(args.table.read_text())
    fields = table["epoch_fields"]
    runs = [(n, seed) for n in table["networks"] for seed in n["runs"]]
    both = [n for n in table["networks"] if {"0", "1"} <= set(n["runs"])]
    epochs = len(runs[0][0]["runs"][runs[0][1]]["seconds"])

    def history(run: dict[str, Any], epoch: int) -> list[dict[str, Any]]:
        return [{f: run[f][e] for f in fields} | {"epoch": e + 1} for e in range(epoch)]

    def correlations(pairs: list[tuple[dict[str, Any], dict[str, Any]]], name: str, epoch: int) -> tuple[float, ...]:
        values = [estimate_value(name, history(mine, epoch)) for mine, _ in pairs]
        target = [other["val_accuracy"][-1] for _, other in pairs]
        return kendall_tau(values, target), spearman_rho(values, target)

    rows = []
    for name in RUNG_ESTIMATES:
        for epoch in range(1, epochs + 1):
            try:
                row: dict[str, Any] = {"estimate": name, "epoch": epoch}
                for seed in sorted({s for _, s in runs}):
                    same = [(n["runs"][seed], n["runs"][seed]) for n in table["networks"] if seed in n["runs"]]
                    row[f"tau_same_seed{seed}"], row[f"rho_same_seed{seed}"] = correlations(same, name, epoch)
                    row[f"networks_seed{seed}"] = len(same)
                if both:
                    taus = [correlations([(n["runs"][a], n["runs"][b]) for n in both], name, epoch)
                            for a, b in (("0", "1"), ("1", "0"))]
                    row["tau_other"] = float(np.mean([t for t, _ in taus]))
                    row["rho_other"] = float(np.mean([r for _, r in taus]))
            except ValueError:  # an estimate the recording did not measure
                continue
            row["extra_share"] = float(np.mean([
                extra_seconds(name, history(n["runs"][s], epoch)[-1]) / max(sum(n["runs"][s]["seconds"][:epoch]), 1e-9)
                for n, s in runs]))
            rows.append(row)
    ceiling = kendall_tau([n["runs"]["0"]["val_accuracy"][-1] for n in both],
                          [n["runs"]["1"]["val_accuracy"][-1] for n in both]) if len(both) > 1 else None
    out = {"networks": len(table["networks"]), "networks_both_seeds": len(both), "noise_ceiling_tau": ceiling,
           "rows": rows}
    print(f"{len(table['networks'])} networks, {len(both)} with both seeds; noise ceiling (final validation "
          f"accuracy, seed 0 against seed 1): tau {ceiling if ceiling is None else round(ceiling, 3)}")
    key = "tau_other" if both else f"tau_same_seed{runs[0][1]}"
    print(f"Kendall's tau ({key}) at each epoch, and the estimate's extra seconds per training second")
    print("| estimate | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " | extra seconds |")
    print("| --- |" + " ---: |" * (epochs + 1))
    for name in RUNG_ESTIMATES:
        mine = [r for r in rows if r["estimate"] == name]
        if mine:
            extra = np.mean([r["extra_share"] for r in mine])
            print(f"| {name} | " + " | ".join(f"{r[key]:.2f}" for r in mine) + f" | {100 * extra:.1f}% |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="train the whole grid (resumes)")
    rec.add_argument("--out", type=Path, default=REPO / "reports" / "bench")
    rec.add_argument("--workers", type=int, default=2)
    rec.add_argument("--threads", type=int, default=1)
    rec.add_argument("--second-seed", type=int, default=64, help="networks recorded with seed 1 too")
    rec.add_argument("--table", type=Path, default=DEFAULT_TABLE, help="networks recorded there are not trained again")
    exp = sub.add_parser("export", help="write the table from the recorded studies")
    exp.add_argument("--out", type=Path, default=REPO / "reports" / "bench")
    exp.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    est = sub.add_parser("estimates", help="the rung estimates' rank correlations on the table")
    est.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    est.add_argument("--json", default="")
    args = parser.parse_args()
    {"record": record, "export": export, "estimates": estimates}[args.command](args)


if __name__ == "__main__":
    main()
