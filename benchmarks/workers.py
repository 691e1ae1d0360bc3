"""Trials per hour with 1 and 2 workers, on SQLite and on PostgreSQL, and the storage's cost per trial.

    python benchmarks/workers.py [--n-trials 4]

Runs `resnet-bench sweep` on the quickstart study (fresh storage each time) with --workers 1 and 2,
on a SQLite file and on a throwaway PostgreSQL server (Debian's postgresql and the [postgres] extra),
then times what one trial costs the storage alone: ask, the record's attributes, tell.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres import postgres_server  # noqa: E402

from resnet_bench.search.records import TrialRecord  # noqa: E402


def sweep_rate(storage: str, workers: int, n_trials: int, out: Path) -> dict[str, float]:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "resnet_bench", "sweep", "--storage", storage, "--study-name",
                    f"bench-{workers}", "--n-trials", str(n_trials), "--workers", str(workers), "--out", str(out),
                    "--device", "cpu", "--format", "json"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    study = optuna.load_study(study_name=f"bench-{workers}", storage=storage)
    trained = sum(t.user_attrs.get("status") == "trained" for t in study.trials)
    return {"seconds": round(seconds, 1), "trained": trained, "trials_per_hour": round(3600 * trained / seconds, 1)}


def storage_cost(storage: str, trials: int = 30) -> float:
    """Seconds per trial spent in the storage: ask, the record's ~30 attributes (twice), tell."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name="storage-cost", directions=["maximize", "minimize"])
    record = TrialRecord(status="trained", spec="block=basic,layers=1", params=1, gflops=0.1, val_accuracy=0.5,
                         recipe={"epochs": 1}, seed=0, dataset="x", device="cpu", threads=1, torch_version="x",
                         resnet_bench_version="x", state_file="x", trial_seconds=1.0, epochs=1)
    started = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        trial.suggest_int("blocks_1", 1, 3)
        for _ in range(2):
            for key, value in record.to_attrs().items():
                trial.set_user_attr(key, value)
        study.tell(trial, [0.5, 0.1])
    return (time.perf_counter() - started) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=4)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder, postgres_server() as postgres:
        for label, storage in (("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}"), ("postgresql", postgres)):
            for workers in (1, 2):
                results[f"{label}, {workers} worker(s)"] = sweep_rate(storage, workers, args.n_trials, Path(folder))
                print(label, workers, results[f"{label}, {workers} worker(s)"], flush=True)
            results[f"{label} storage seconds per trial"] = round(storage_cost(storage), 4)
            print(label, "storage", results[f"{label} storage seconds per trial"], flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
