"""The sweep: an Optuna study over the generator's space, cost constraints applied before any training.

Constraints are Optuna's own (`Trial.set_constraint`; a value > 0 is violated): an infeasible candidate
becomes a complete trial with positive constraint values and the `status` attribute `infeasible`. TPE
and NSGA-II then learn from it and stop proposing such networks, which rejecting it before a trial
exists would not teach them. It is never trained and does not count against the trained-trial budget;
nor is a duplicate of a trained network and recipe (search/rejections.py stores both).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from resnet_bench.checkpoint import save_checkpoint
from resnet_bench.data import Splits, study_splits
from resnet_bench.devices import device_name, resolve_device, resolve_precision
from resnet_bench.errors import BadInputError, DiskFullError
from resnet_bench.files import is_disk_full, no_space_text
from resnet_bench.models import build_model
from resnet_bench.presets import resolve as resolve_model
from resnet_bench.profiling import count_cost, count_on_meta, measure_speed
from resnet_bench.recipe import Recipe
from resnet_bench.search.config import StudyConfig
from resnet_bench.search.records import (
    DUPLICATE,
    FAILED,
    INFEASIBLE,
    INTERRUPTED,
    STOPPED,
    TRAINED,
    TrialRecord,
    retried_by_the_next_command,
    store_record,
)
from resnet_bench.search.rejections import (
    outside_the_constraints,
    record_duplicate,
    record_infeasible,
    set_constraints,
    trained_twin,
    violations,
)
from resnet_bench.search.rungs import SweepRungs
from resnet_bench.search.space import sample_recipe, sample_spec, suggest_baseline
from resnet_bench.search.states import SharedStates
from resnet_bench.search.storage import DEFAULT_HEARTBEAT_SECONDS, StudyLocation, safe_url
from resnet_bench.search.study import open_study, study_precision
from resnet_bench.spec import ResNetSpec, SpecError
from resnet_bench.train import EpochMetrics, spec_for_data, train
from resnet_bench.version import __version__

MAX_REJECTED_PER_TRIAL = 50  # infeasible or duplicate proposals per trained trial before the sweep gives up


@dataclass(frozen=True)
class SweepSummary:
    """What one sweep command did."""

    study_name: str
    storage: str
    trained: int  # trials trained by this command (to the end, stopped early, or failed)
    infeasible: int  # candidates rejected by the constraints, never trained
    failed: int  # trials that failed while training
    seconds: float  # wall time of the command
    stopped: str  # why the sweep stopped: budget, timeout, or infeasible space
    stopped_early: int = 0  # trials that early stopping ended at a rung
    duplicates: int = 0  # proposals of a network and recipe already trained: not trained again, not counted

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return dataclasses.asdict(self)

    @classmethod
    def combine(cls, parts: list[SweepSummary], *, seconds: float, stopped: str) -> SweepSummary:
        """The summary of several workers' summaries of one command."""
        first = parts[0]
        return cls(study_name=first.study_name, storage=first.storage, trained=sum(p.trained for p in parts),
                   infeasible=sum(p.infeasible for p in parts), failed=sum(p.failed for p in parts),
                   seconds=seconds, stopped=stopped, stopped_early=sum(p.stopped_early for p in parts),
                   duplicates=sum(p.duplicates for p in parts))


class Sweep:
    """One sweep command: adds `n_trials` trained trials to a study, resuming it if it exists."""

    def __init__(
        self, config: StudyConfig, location: StudyLocation, *, device: str = "auto", worker: int = 0,
        heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
        on_trial_start: Callable[[int, str], None] | None = None,
        on_epoch: Callable[[int, EpochMetrics, int], None] | None = None,
        on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None,
        on_batch: Callable[[int, int, int, Any], None] | None = None, artifacts: str | None = None,
    ) -> None:
        self.config = config
        self.rungs = SweepRungs(config)  # early stopping, trial by trial (search/rungs.py)
        # Training states every worker's machine can read (search/states.py), or None: this machine's files only.
        self.shared = SharedStates(artifacts) if artifacts else None
        self.location = location
        self.device = resolve_device(device)
        location.make_folder()
        self.study = open_study(config, location.storage, location.name, worker=worker,
                                heartbeat_seconds=heartbeat_seconds)
        # What `precision = "auto"` trains in, the same for every trial of the study, whichever machine runs it.
        self.precision = study_precision(self.study, lambda: resolve_precision("auto", self.device))
        self.data: Splits = study_splits(config)
        self.show_progress(on_trial_start, on_epoch, on_trial_end, on_batch)
        self.disk_full: str | None = None  # set when a write met a full disk: the command stops, exit 1

    def show_progress(
        self, on_trial_start: Callable[[int, str], None] | None = None,
        on_epoch: Callable[[int, EpochMetrics, int], None] | None = None,
        on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None,
        on_batch: Callable[[int, int, int, Any], None] | None = None,
    ) -> None:
        """What the sweep calls as it goes (the constructor's callbacks, also for a sweep made before its display);
        on_batch: (epoch, step, steps per epoch, loss on the device), progress within an epoch."""
        self.on_trial_start, self.on_epoch, self.on_trial_end = on_trial_start, on_epoch, on_trial_end
        self.on_batch = on_batch

    def run(self, n_trials: int | None = None, timeout_minutes: float | None = None,
            take_ticket: Callable[[], bool] | None = None) -> SweepSummary:
        """Run until n_trials more trials are trained (or failed), the timeout passes, or the space proves infeasible.

        `take_ticket` (a worker of a parent sweep: TrialTickets.take) shares the parent's budget among its workers:
        this worker trains a trial only on a ticket, and stops when none is left."""
        budget = n_trials if n_trials is not None else self.config.n_trials
        timeout = timeout_minutes if timeout_minutes is not None else self.config.timeout_minutes
        counts = {TRAINED: 0, STOPPED: 0, INFEASIBLE: 0, DUPLICATE: 0, FAILED: 0}
        stopped = ["timeout" if timeout else "budget"]
        started = time.perf_counter()

        def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            status = trial.user_attrs.get("status", FAILED)
            counts[status] = counts.get(status, 0) + 1
            if self.on_trial_end is not None:
                self.on_trial_end(trial)
            spent = status in (TRAINED, STOPPED, FAILED)  # a trained trial spends the ticket it held
            if self.disk_full is not None:  # every later trial would fail the same way
                study.stop()
            elif counts[TRAINED] + counts[STOPPED] + counts[FAILED] >= budget or (
                    spent and take_ticket is not None and not take_ticket()):
                stopped[0] = "budget"
                study.stop()
            elif counts[INFEASIBLE] + counts[DUPLICATE] >= MAX_REJECTED_PER_TRIAL * budget:
                stopped[0] = "infeasible space" if counts[INFEASIBLE] >= counts[DUPLICATE] else "no new candidates"
                study.stop()

        logging.getLogger("optuna").setLevel(logging.ERROR)  # failures are reported by the sweep itself
        if take_ticket is None or take_ticket():
            try:
                self.study.optimize(
                    self._objective, n_trials=None, timeout=timeout * 60 if timeout else None, catch=(Exception,),
                    callbacks=[after_trial], gc_after_trial=False,
                )
            except Exception as exc:
                # A full disk under the storage fails Optuna's own bookkeeping too (its "Should not reach"): the
                # trial stays running, and the heartbeat retries it in a later command once there is space.
                if self.disk_full is None and not is_disk_full(exc):
                    raise
                raise DiskFullError(self.disk_full
                                    or no_space_text(f"the storage {safe_url(self.location.storage)}")) from exc
            if self.disk_full is not None:
                raise DiskFullError(self.disk_full)
        else:  # the other workers hold the whole budget
            stopped[0] = "budget"
        return SweepSummary(
            study_name=self.study.study_name, storage=self.location.storage,
            trained=counts[TRAINED] + counts[STOPPED] + counts[FAILED], infeasible=counts[INFEASIBLE],
            failed=counts[FAILED], seconds=time.perf_counter() - started, stopped=stopped[0],
            stopped_early=counts[STOPPED], duplicates=counts[DUPLICATE],
        )

    # -- one trial: propose, measure, train and record --------------------------------------------------------

    def _objective(self, trial: optuna.Trial) -> list[float]:
        started = time.perf_counter()
        record = TrialRecord(  # what every trial is measured under (a training records the device it ran on)
            baseline=trial.user_attrs.get("baseline", ""), seed=self.config.seed, device=device_name(self.device),
            threads=torch.get_num_threads(), torch_version=str(torch.__version__), resnet_bench_version=__version__,
        )
        record.measured_on(self.data)
        try:
            spec, recipe = self.propose(trial, record.baseline)
        except (SpecError, BadInputError) as exc:  # a combination the generator refuses: never trained
            return record_infeasible(trial, record, self.config, f"invalid network: {exc}", started, invalid=True)
        record.recipe = recipe.to_dict()
        twin = trained_twin(self.study, spec.format(), record.recipe)
        if twin is not None:
            return record_duplicate(trial, record, twin, started)
        values = self.measure(spec, record)
        if any(v > 0 for v in values.values()):
            reason = outside_the_constraints(self.config, record, values)
            return record_infeasible(trial, record, self.config, reason, started)
        set_constraints(trial, values)
        return self.train_and_record(trial, spec, recipe, record, started)

    def propose(self, trial: optuna.Trial, baseline: str) -> tuple[ResNetSpec, Recipe]:
        """The network and recipe of a trial: a baseline's preset with the study's base recipe (the same for every
        baseline), or a candidate sampled from the space; raises SpecError for a combination the generator refuses."""
        if baseline:
            suggest_baseline(trial, self.config)  # its place in the space, where the space holds it
            return spec_for_data(resolve_model(baseline), self.data), self.config.base_recipe()
        recipe = sample_recipe(trial, self.config)
        return spec_for_data(sample_spec(trial, self.config), self.data), recipe

    def measure(self, spec: ResNetSpec, record: TrialRecord) -> dict[str, float]:
        """The cost before any training, stored in the record; Optuna's constraint values, <= 0 where satisfied.

        Parameters, FLOPs and activations are counted on the meta device first, without a weight, so that a
        candidate of billions of parameters is refused in milliseconds; a candidate inside those bounds is then
        traced by fvcore (the FLOPs of everything else) and, when the study needs it, timed alone on the device.
        """
        counts = count_on_meta(spec, self.data.image_size)
        record.spec, record.params, record.gflops = spec.format(), counts.params, counts.gflops
        record.activations = counts.activations
        values = violations(self.config, record)
        if any(v > 0 for v in values.values()):
            return values
        record.gflops_total = count_cost(spec, self.data.image_size).gflops_total
        if self.config.needs_latency:
            record.latency_ms = measure_speed(spec, input_size=self.data.image_size, device=str(self.device),
                                              batch_size=1, runs=10).latency_ms
        return violations(self.config, record)

    def train_and_record(self, trial: optuna.Trial, spec: ResNetSpec, recipe: Recipe, record: TrialRecord,
                         started: float) -> list[float]:
        """Train a feasible candidate, saving its state after every epoch, and store what it measured."""
        # A retried trial inherits its attributes, this file among them, and resumes from it.
        fresh = str(self.location.states / f"trial-{trial.number}-{uuid.uuid4().hex[:8]}.state")
        record.state_file = trial.user_attrs.get("state_file") or fresh
        if self.shared is not None and not Path(record.state_file).exists():
            # Retried on another machine: a file of this one, from the state every machine can read.
            record.state_file = fresh
            self.shared.fetch(trial.user_attrs, Path(fresh))
        store_record(trial, record)
        if self.on_trial_start is not None:
            self.on_trial_start(trial.number, record.spec)
        try:
            torch.manual_seed(self.config.seed)
            training_started = time.perf_counter()
            model = build_model(spec)
            estimates, estimate_epochs = self.rungs.estimates_to_measure(recipe)
            after_epoch, on_resume = self._epoch_callbacks(trial, recipe, record)
            result = train(model, self.data, self.as_trained(recipe), self.device,
                           callback=after_epoch, on_resume=on_resume, state_path=record.state_file,
                           on_batch=self.on_batch, test_curve=self.config.curves, estimates=estimates,
                           estimate_epochs=estimate_epochs)
            training = time.perf_counter() - training_started
            if self.config.checkpoints:
                record.checkpoint = str(self.save_checkpoint(trial.number, model, spec, result))
        except (Exception, KeyboardInterrupt) as exc:
            full = is_disk_full(exc)
            reason = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            if full:
                reason = self.disk_full = no_space_text(str(Path(record.state_file).parent))
            record.status, record.reason = FAILED, reason
            record.trial_seconds = time.perf_counter() - started
            try:
                store_record(trial, record)
            except Exception:
                if not full:  # a storage on the full disk too: the trial stays running, to be retried
                    raise
            if not record.baseline and not retried_by_the_next_command(reason):
                # A failed baseline, or a trial that Ctrl-C or a full disk ended, is queued again by the next
                # command, from this state (the last epoch's, written whole: see files.atomic_path).
                self._forget_state(trial, record)
            raise
        # Only a killed worker, a failed baseline and a trial that Ctrl-C or a full disk ended leave their state
        # behind, for the retry.
        self._forget_state(trial, record)
        record.add_training(result, self.data)
        record.status = STOPPED if result.stopped_early else TRAINED
        record.trial_seconds = time.perf_counter() - started
        record.overhead_seconds = record.trial_seconds - training
        store_record(trial, record)
        return [float(getattr(record, o.metric)) for o in self.config.objectives]

    def _forget_state(self, trial: optuna.Trial, record: TrialRecord) -> None:
        """The trial ended and no retry will read its training state: removed here and from the shared store."""
        Path(record.state_file).unlink(missing_ok=True)
        if self.shared is not None:
            self.shared.discard(trial)

    def save_checkpoint(self, number: int, model: torch.nn.Module, spec: ResNetSpec, result: Any) -> Path:
        """The trained weights under the study's folder, as `resnet-bench train --save` writes them."""

        return save_checkpoint(self.location.folder / "checkpoints" / f"trial-{number}.pt", model, spec, result,
                               dataset=self.data.dataset_name, val_size=self.data.val_size, split_seed=self.data.seed,
                               image_size=self.data.image_size)

    def as_trained(self, recipe: Recipe) -> Recipe:
        """The recipe as this study trains it: `auto` precision resolved as the study resolved it (the record keeps
        the recipe as sampled, and the resolved precision beside it)."""
        if recipe.precision != "auto":
            return recipe
        return dataclasses.replace(recipe, precision=self.precision)

    def _epoch_callbacks(
        self, trial: optuna.Trial, recipe: Recipe, record: TrialRecord,
    ) -> tuple[Callable[[int, EpochMetrics], bool], Callable[[tuple[EpochMetrics, ...], float], None]]:
        """What runs after each epoch of a trial (True stops its training: early stopping, at a rung), and what the
        trainer tells of the epochs a resumed trial restored."""
        history: list[dict[str, Any]] = []
        seconds = [0.0]

        def on_resume(restored: tuple[EpochMetrics, ...], restored_seconds: float) -> None:
            """A retried trial resumes from its state: its rung estimate reads the epochs before the resume too."""
            history[:] = [dataclasses.asdict(m) for m in restored]
            seconds[0] = restored_seconds

        def after_epoch(epoch: int, metrics: EpochMetrics) -> bool:
            if self.shared is not None:  # the state the trainer saved after this epoch, for any machine
                self.shared.publish(trial, Path(record.state_file), epoch)
            seconds[0] += metrics.seconds
            history.append(dataclasses.asdict(metrics))
            if self.on_epoch is not None:
                self.on_epoch(trial.number, metrics, recipe.epochs)
            return self.rungs.judges(trial, recipe, epoch) and not self.rungs.goes_on(
                self.study, trial, record, epoch, history, seconds[0])

        return after_epoch, on_resume


def record_of(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """The record stored with a trial."""
    return TrialRecord.from_attrs(trial.user_attrs)
