"""Confirmation: re-train the front and the baselines with more seeds, and keep each run with the study.

A front found with a short or early-stopped training is a guess until it is re-trained. `confirm` re-trains
chosen trials of a study with each trial's own recipe (or another number of epochs) and seeds beyond the
search's, on the study's data and validation split, so that the confirmed accuracies compare with the search's on
the same images. Each run is stored as a study attribute `confirm:<trial>:<seed>:<epochs>` holding its
TrialRecord (with `confirms` and `split_seed` set): no Optuna trial, so the sampler, the search's trial counts and
the front never see it, and any storage (SQLite, PostgreSQL) keeps it. A run saves its training state after every
epoch under the study's folder; a confirm that is killed and started again resumes where it was, and skips the runs
already stored. One `confirm` per study at a time: two would train the same runs twice (and store the same results).
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_bench.cpu import use_threads
from resnet_bench.devices import resolve_device
from resnet_bench.recipe import Recipe
from resnet_bench.search.records import TRAINED, TrialRecord
from resnet_bench.spec import ResNetSpec
from resnet_bench.version import __version__

RUN_KEY = re.compile(r"^confirm:(\d+):(-?\d+):(\d+)$")  # trial, seed, epochs
# The study attribute naming the runs of the last confirm command, which the report shows:
# {"runs": [run keys], "seeds": [...], "epochs": [the epochs its runs train]}.
LAST_CONFIRM = "confirm_last"


def run_key(number: int, seed: int, epochs: int) -> str:
    """The study attribute that holds one confirm run."""
    return f"confirm:{number}:{seed}:{epochs}"


def stored_runs(study_attrs: dict[str, Any], last: bool = True) -> list[TrialRecord]:
    """The confirm runs stored with a study (its user attributes): those of the last confirm command, or every
    one; by trial, epochs and seed."""
    keys = set(study_attrs.get(LAST_CONFIRM, {}).get("runs", [])) if last else None
    runs = [TrialRecord.from_attrs(v) for k, v in study_attrs.items()
            if RUN_KEY.match(k) and isinstance(v, dict) and (keys is None or k in keys)]
    return sorted(runs, key=lambda r: (r.confirms or 0, r.epochs or 0, r.seed or 0))


@dataclass(frozen=True)
class ConfirmRun:
    """One network to re-train with one seed."""

    number: int  # the study's trial
    baseline: str  # its preset name, "" for a sampled network
    spec: str  # its one-line spec, as trained
    recipe: dict[str, Any]  # its recipe with this run's seed and epochs
    seed: int

    @property
    def key(self) -> str:
        return run_key(self.number, self.seed, self.recipe["epochs"])

    def state(self, states: Path) -> Path:
        """Its training state, saved after every epoch under the study's `states` folder until it is stored."""
        return Path(states) / f"confirm-{self.number}-seed{self.seed}-epochs{self.recipe['epochs']}.state"


def plan_runs(trials: list[TrialRecord], numbers: list[int], seeds: list[int],
              epochs: int | None = None) -> list[ConfirmRun]:
    """The runs for trials `numbers` (records in `trials`, by number) and each seed: the trial's recipe with the
    seed, and `epochs` when given."""
    by_number = dict(zip(numbers, trials, strict=True))
    runs = []
    for number, record in by_number.items():
        for seed in seeds:
            recipe = {**(record.recipe or {}), "seed": seed, **({"epochs": epochs} if epochs else {})}
            if recipe.get("precision") == "auto" and record.trained_precision():  # as the search trained it
                recipe["precision"] = record.trained_precision()
            runs.append(ConfirmRun(number=number, baseline=record.baseline, spec=record.spec, recipe=recipe,
                                   seed=seed))
    return runs


@dataclass(frozen=True)
class ConfirmSummary:
    """What one confirm command did."""

    trained: int  # runs trained by this command
    stored_before: int  # runs found stored already (a resumed or repeated confirm): not trained again
    seconds: float


def expected_seconds(runs: list[ConfirmRun], trials: dict[int, TrialRecord], workers: int) -> float | None:
    """How long the runs should take on `workers` processes: each run its trial's own training seconds per epoch
    in the search times its epochs, spread over the workers longest first (None: a trial stored no seconds)."""
    each = []
    for run in runs:
        record = trials.get(run.number)
        if record is None or not record.train_seconds or not record.epochs:
            return None
        each.append(record.train_seconds / record.epochs * run.recipe["epochs"])
    loads = [0.0] * max(1, workers)
    for seconds in sorted(each, reverse=True):
        loads[loads.index(min(loads))] += seconds
    return max(loads)


def confirm(
    config: Any, location: Any, runs: list[ConfirmRun], *, device: str = "auto", workers: int = 1,
    threads: int | None = None,
    on_run_start: Callable[[ConfirmRun], None] | None = None,
    on_epoch: Callable[[Any, int], None] | None = None,
    on_run_end: Callable[[ConfirmRun, TrialRecord], None] | None = None,
) -> ConfirmSummary:
    """Train every run not stored yet, each on the study's data and validation split, and store its record.

    With `workers` > 1 the runs train in that many processes of `threads` threads each (the sweep's rule chooses
    them on the command line); each returns its record and this process stores it, so the storage has one writer.
    `on_epoch` is called in the one-process case only (a worker's epochs are not seen from here)."""
    import optuna

    from resnet_bench.search.storage import open_existing_storage

    started = time.perf_counter()
    storage = open_existing_storage(location.storage)
    study_id = storage.get_study_id_from_name(location.name)
    epochs = sorted({r.recipe["epochs"] for r in runs})
    storage.set_study_user_attr(study_id, LAST_CONFIRM, {
        "runs": [r.key for r in runs], "seeds": sorted({r.seed for r in runs}), "epochs": epochs})
    done = set(storage.get_study_user_attrs(study_id))
    todo = [r for r in runs if r.key not in done]
    if not todo:
        return ConfirmSummary(trained=0, stored_before=len(runs), seconds=time.perf_counter() - started)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    location.states.mkdir(parents=True, exist_ok=True)

    def store(run: ConfirmRun, record: TrialRecord) -> None:
        storage.set_study_user_attr(study_id, run.key, record.to_attrs())
        run.state(location.states).unlink(missing_ok=True)
        if on_run_end is not None:
            on_run_end(run, record)

    if workers <= 1:
        from resnet_bench.data import study_splits

        data = study_splits(config)
        for run in todo:
            if on_run_start is not None:
                on_run_start(run)
            store(run, train_run(config, data, run, device, location.states, on_epoch))
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker, initargs=(config, threads)) as pool:
            futures = {}
            for run in todo:
                if on_run_start is not None:
                    on_run_start(run)
                futures[pool.submit(_train_in_worker, run, device, location.states)] = run
            for future in as_completed(futures):
                store(futures[future], future.result())
    return ConfirmSummary(trained=len(todo), stored_before=len(runs) - len(todo),
                          seconds=time.perf_counter() - started)


def train_run(config: Any, data: Any, run: ConfirmRun, device: str, states: Path,
              on_epoch: Callable[[Any, int], None] | None = None) -> TrialRecord:
    """Train one run on the study's data (resuming from its state file under `states`) and return its record; the
    state stays until the caller has stored the record, so that a kill between the two loses no training."""
    import torch

    from resnet_bench.models import build_model
    from resnet_bench.train import train

    resolved = resolve_device(device)
    recipe = Recipe.from_dict(run.recipe)
    state = run.state(states)
    torch.manual_seed(run.seed)  # the weights
    result = train(build_model(ResNetSpec.parse(run.spec)), data, recipe, resolved, state_path=state,
                   callback=(lambda epoch, metrics: on_epoch(metrics, recipe.epochs)) if on_epoch else None)
    record = TrialRecord(status=TRAINED, baseline=run.baseline, spec=run.spec, recipe=recipe.to_dict(), seed=run.seed,
                         split_seed=config.seed, confirms=run.number, torch_version=str(torch.__version__),
                         resnet_bench_version=__version__)
    record.add_training(result, data)
    return record  # the caller stores it, then removes the state


_WORKER: dict[str, Any] = {}  # in a worker process: the study's config and data, loaded once


def _start_worker(config: Any, threads: int | None) -> None:
    from resnet_bench.data import study_splits

    use_threads(threads)
    _WORKER.update(config=config, data=study_splits(config))


def _train_in_worker(run: ConfirmRun, device: str, states: Path) -> TrialRecord:
    return train_run(_WORKER["config"], _WORKER["data"], run, device, states)
