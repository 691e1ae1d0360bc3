"""The sweep: an Optuna study over the generator's space, cost constraints applied before any training.

Constraints are Optuna's own (`Trial.set_constraint`; a value > 0 is violated): an infeasible candidate
becomes a complete trial with positive constraint values and the `status` attribute `infeasible`. TPE
and NSGA-II then learn from it and stop proposing such networks, which rejecting it before a trial
exists would not teach them. It is never trained and does not count against the trained-trial budget.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from resnet_bench import __version__
from resnet_bench.data import Splits, load_dataset, split
from resnet_bench.errors import BadInputError
from resnet_bench.models import build_model
from resnet_bench.presets import get as get_preset
from resnet_bench.profiling import count_cost, measure_speed
from resnet_bench.search.config import CONSTRAINTS, StudyConfig
from resnet_bench.search.records import FAILED, INFEASIBLE, TRAINED, TrialRecord
from resnet_bench.search.space import sample_recipe, sample_spec, space_size
from resnet_bench.spec import SpecError
from resnet_bench.train import EpochMetrics, resolve_device, spec_for_data, train

DEFAULT_HEARTBEAT_SECONDS = 30  # a killed worker's trial is failed and retried after twice this
MAX_REJECTED_PER_TRIAL = 50  # infeasible candidates per trained trial before the sweep gives up on the space
FINGERPRINT, FINGERPRINT_PARTS, STUDY_FILE = "fingerprint", "fingerprint_parts", "study_file"


class StudyMismatchError(BadInputError):
    """A study file whose space, objectives or data set differ from those of the stored study it resumes."""


def default_state_dir(storage: str, study_name: str, out: Path = Path("reports")) -> Path:
    """Where training states are kept: beside a SQLite file, else under <out>/<study>/states."""
    if storage.startswith("sqlite:///"):
        return Path(storage.removeprefix("sqlite:///")).parent / "states"
    return out / study_name / "states"


def constraint_values(config: StudyConfig, cost: dict[str, float | None]) -> dict[str, float]:
    """Optuna's constraint values, <= 0 where satisfied, for the bounds whose metric was measured."""
    return {key: float(cost[metric]) - bound for key, bound in config.constraints.items()
            if cost.get(metric := CONSTRAINTS[key]) is not None}


def default_storage(config: StudyConfig, out: Path) -> str:
    """A SQLite file under reports/<study>/ (Optuna's RDB storage)."""
    folder = out / config.name
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'study.db').resolve()}"


def open_storage(url: str, heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS) -> optuna.storages.BaseStorage:
    """Optuna's RDB storage for a URL, with heartbeats: a trial whose worker died is failed and retried.

    A running trial's worker writes a heartbeat every `heartbeat_seconds`; the next worker to start a
    trial fails one silent for twice that long, and Optuna enqueues it again (at most twice), with its
    attributes, so that it resumes from its last epoch. SQLite waits up to 60 s for another worker's lock.
    """
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    import sqlalchemy.exc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
        for attempt in range(6):
            try:
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=heartbeat_seconds, grace_period=2 * heartbeat_seconds,
                    heartbeat_stale_trial_callback=retry, **kwargs,
                )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
                # Workers that meet an empty database at the same moment race to create Optuna's
                # tables; the losers find them made once the winner commits.
                if attempt == 5:
                    raise BadInputError(f"--storage {url!r} cannot be opened: {type(exc).__name__}") from None
                time.sleep(0.5 * (attempt + 1))
            except Exception as exc:  # a bad URL, a server that does not answer, a missing driver
                raise BadInputError(f"--storage {url!r} cannot be opened: {type(exc).__name__}: {exc}") from None
    raise AssertionError("unreachable")


def make_sampler(config: StudyConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded (per worker, so that workers do not propose the same candidates);
    TPE and NSGA-II read the trials' constraint values themselves."""
    options = config.sampler_options
    seed = config.seed + 1000 * worker
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if config.sampler == "tpe":
            # multivariate + group: the per-stage block counts and the bottleneck-only fields are
            # conditional, and a joint model of them learns faster than independent ones.
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True,
                n_startup_trials=options.get("n_startup_trials", 10),
            )
        if config.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=options.get("population_size", 50))
        return optuna.samplers.RandomSampler(seed=seed)


def open_study(
    config: StudyConfig, storage: str, study_name: str | None = None, *, worker: int = 0,
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
) -> optuna.Study:
    """Create the study, or load it to resume; refuse a study file whose space, objectives or data set changed.

    The baselines are enqueued once, when the study is made or first meets them.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or config.name
    study = optuna.create_study(
        storage=open_storage(storage, heartbeat_seconds), study_name=name, load_if_exists=True,
        directions=[o.direction for o in config.objectives], sampler=make_sampler(config, worker),
    )
    stored = study.user_attrs.get(FINGERPRINT)
    if stored is None:
        study.set_user_attr(FINGERPRINT, config.fingerprint())
        study.set_user_attr(FINGERPRINT_PARTS, config.fingerprint_parts())
        study.set_user_attr(STUDY_FILE, config.source)
    elif stored != config.fingerprint():
        before, now = study.user_attrs.get(FINGERPRINT_PARTS, {}), config.fingerprint_parts()
        changed = [k for k in now if before.get(k) != now[k]]
        detail = ""
        if changed == ["space"]:
            keys = [k for k in now["space"] if before["space"].get(k) != now["space"][k]]
            detail = " (" + ", ".join(f"space.{k}: {before['space'].get(k)} -> {now['space'][k]}" for k in keys) + ")"
        raise StudyMismatchError(
            f"study {name!r} in this storage was made with a different {' and '.join(changed) or 'study file'}"
            f"{detail}; to start a new study give it another name (--study-name or name in the file)"
        )
    present = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)}
    for baseline in config.baselines:
        if baseline not in present:
            study.enqueue_trial({}, user_attrs={"baseline": baseline})
    return study


@dataclass(frozen=True)
class SweepSummary:
    """What one sweep command did."""

    study_name: str
    storage: str
    trained: int  # trials trained by this command (complete or failed)
    infeasible: int  # candidates rejected by the constraints, never trained
    failed: int  # trials that failed while training
    seconds: float  # wall time of the command
    stopped: str  # why the sweep stopped: budget, timeout, or infeasible space


def summarise_since(study: optuna.Study, since: Any, storage: str, *, seconds: float, stopped: str) -> SweepSummary:
    """What happened to a study since a moment: trials trained, failed and infeasible (all workers together)."""
    counts = {TRAINED: 0, INFEASIBLE: 0, FAILED: 0}
    for trial in study.get_trials(deepcopy=False):
        if trial.datetime_start is not None and trial.datetime_start >= since and trial.state.is_finished():
            counts[trial.user_attrs.get("status") or FAILED] += 1
    return SweepSummary(study_name=study.study_name, storage=storage, trained=counts[TRAINED] + counts[FAILED],
                        infeasible=counts[INFEASIBLE], failed=counts[FAILED], seconds=seconds, stopped=stopped)


class Sweep:
    """One sweep command: adds `n_trials` trained trials to a study, resuming it if it exists."""

    def __init__(
        self, config: StudyConfig, *, storage: str, study_name: str | None = None, device: str = "auto",
        state_dir: Path | None = None, worker: int = 0, heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
        on_trial_start: Callable[[int, str], None] | None = None,
        on_epoch: Callable[[int, EpochMetrics, int], None] | None = None,
        on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.device = resolve_device(device)
        self.study = open_study(config, storage, study_name, worker=worker, heartbeat_seconds=heartbeat_seconds)
        # Per-epoch training states, beside the storage: a retried trial resumes from its last epoch.
        self.state_dir = state_dir if state_dir is not None else default_state_dir(storage, self.study.study_name)
        self.data: Splits = split(
            load_dataset(config.dataset, image_size=config.image_size), val_size=config.val_size, seed=config.seed
        )
        self.on_trial_start, self.on_epoch, self.on_trial_end = on_trial_start, on_epoch, on_trial_end

    def run(self, n_trials: int | None = None, timeout_minutes: float | None = None) -> SweepSummary:
        """Run until n_trials more trials are trained (or failed), the timeout passes, or the space proves infeasible."""
        budget = n_trials if n_trials is not None else self.config.n_trials
        timeout = timeout_minutes if timeout_minutes is not None else self.config.timeout_minutes
        counts = {TRAINED: 0, INFEASIBLE: 0, FAILED: 0}
        stopped = ["timeout" if timeout else "budget"]
        started = time.perf_counter()

        def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            status = trial.user_attrs.get("status", FAILED)
            counts[status] = counts.get(status, 0) + 1
            if self.on_trial_end is not None:
                self.on_trial_end(trial)
            if counts[TRAINED] + counts[FAILED] >= budget:
                stopped[0] = "budget"
                study.stop()
            elif counts[INFEASIBLE] >= MAX_REJECTED_PER_TRIAL * budget:
                stopped[0] = "infeasible space"
                study.stop()

        logging.getLogger("optuna").setLevel(logging.ERROR)  # failures are reported by the sweep itself
        self.study.optimize(
            self._objective, n_trials=None, timeout=timeout * 60 if timeout else None, catch=(Exception,),
            callbacks=[after_trial], gc_after_trial=False,
        )
        return SweepSummary(
            study_name=self.study.study_name, storage=self.storage, trained=counts[TRAINED] + counts[FAILED],
            infeasible=counts[INFEASIBLE], failed=counts[FAILED], seconds=time.perf_counter() - started,
            stopped=stopped[0],
        )

    # -- one trial ------------------------------------------------------------------------------------------

    def _objective(self, trial: optuna.Trial) -> list[float]:
        started = time.perf_counter()
        config, data = self.config, self.data
        baseline = trial.user_attrs.get("baseline", "")
        record = TrialRecord(
            baseline=baseline, seed=config.seed, dataset=data.dataset, val_size=data.val_size,
            input_size=data.image_size, device=_device_name(self.device), threads=torch.get_num_threads(),
            torch_version=str(torch.__version__), resnet_bench_version=__version__,
        )
        try:
            recipe = sample_recipe(trial, config)
            record.recipe = recipe.to_dict()
            spec = spec_for_data(get_preset(baseline) if baseline else sample_spec(trial, config), data)
        except (SpecError, BadInputError) as exc:  # a combination the generator refuses: never trained
            return self._infeasible(trial, record, f"invalid network: {exc}", started, invalid=True)

        cost = count_cost(spec, data.image_size)
        record.spec, record.params, record.gflops = spec.format(), cost.params, cost.gflops
        record.gflops_total, record.activations = cost.gflops_total, cost.activations
        if self.config.needs_latency:  # measured alone, before training, at batch 1
            record.latency_ms = measure_speed(spec, input_size=data.image_size, device=str(self.device),
                                              batch_size=1, runs=10).latency_ms
        violations = self._violations(record)
        if any(v > 0 for v in violations.values()):
            over = [f"{key}={getattr(record, CONSTRAINTS[key]):.4g} > {config.constraints[key]:g}"
                    for key, v in violations.items() if v > 0]
            return self._infeasible(trial, record, "outside the constraints: " + ", ".join(over), started)

        _set_constraints(trial, violations)
        # A retried trial inherits its attributes, this file among them, and resumes from it.
        record.state_file = trial.user_attrs.get("state_file") or str(
            self.state_dir / f"trial-{trial.number}-{uuid.uuid4().hex[:8]}.state")
        _store(trial, record)
        if self.on_trial_start is not None:
            self.on_trial_start(trial.number, record.spec)
        try:
            torch.manual_seed(config.seed)
            model = build_model(spec)
            on_epoch = self.on_epoch

            def callback(epoch: int, metrics: EpochMetrics) -> bool:
                if on_epoch is not None:
                    on_epoch(trial.number, metrics, recipe.epochs)
                return False
            training_started = time.perf_counter()
            result = train(model, data, recipe, self.device, callback=callback, state_path=record.state_file)
            training = time.perf_counter() - training_started
        except (Exception, KeyboardInterrupt) as exc:
            reason = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            record.status, record.reason = FAILED, reason
            record.trial_seconds = time.perf_counter() - started
            _store(trial, record)
            raise
        finally:  # only a killed worker leaves its state behind, for the retry
            Path(record.state_file).unlink(missing_ok=True)
        record.val_accuracy, record.test_accuracy = result.val_accuracy, result.test_accuracy
        record.val_images, record.test_images = len(data.val), len(data.test)
        record.epochs, record.train_seconds = result.epochs, result.train_seconds
        record.resumed_from_epoch = result.resumed_from_epoch
        record.images_per_second, record.device = result.images_per_second, result.device
        record.compile_seconds = result.compile_seconds
        record.status = TRAINED
        record.trial_seconds = time.perf_counter() - started
        record.overhead_seconds = record.trial_seconds - training
        _store(trial, record)
        return [float(getattr(record, o.metric)) for o in config.objectives]

    def _violations(self, record: TrialRecord) -> dict[str, float]:
        """Optuna's constraint values, <= 0 where satisfied: `valid` (the generator accepts it), then each bound."""
        measured = {metric: getattr(record, metric) for metric in CONSTRAINTS.values()}
        return {"valid": 0.0, **constraint_values(self.config, measured)}

    def _infeasible(self, trial: optuna.Trial, record: TrialRecord, reason: str, started: float,
                    invalid: bool = False) -> list[float]:
        record.status, record.reason = INFEASIBLE, reason
        record.trial_seconds = record.overhead_seconds = time.perf_counter() - started
        if invalid:  # no cost to compare: every constraint counts as violated
            _set_constraints(trial, {"valid": 1.0, **{k: 1.0 for k in self.config.constraints}})
        else:
            _set_constraints(trial, self._violations(record))
        _store(trial, record)
        # Never trained: the worst accuracy and the measured (or, when unknown, infinite) cost.
        return [0.0 if o.direction == "maximize" else _known_or_inf(getattr(record, o.metric))
                for o in self.config.objectives]


def _set_constraints(trial: optuna.Trial, values: dict[str, float]) -> None:
    for key, value in values.items():
        trial.set_constraint(key, value)


def _known_or_inf(value: float | None) -> float:
    return math.inf if value is None else float(value)


def _store(trial: optuna.Trial, record: TrialRecord) -> None:
    for key, value in record.to_attrs().items():
        trial.set_user_attr(key, value)


def _device_name(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


# -- the dry run ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DryRun:
    """What a space holds, without training anything."""

    space_size: float  # distinct candidates; inf when a float range is continuous
    samples: int  # candidates sampled at random
    invalid: int  # combinations the generator refuses
    feasible: int  # candidates inside the constraints
    gflops_range: tuple[float, float] | None  # min and max over valid samples
    params_range: tuple[int, int] | None  # min and max over valid samples
    feasible_gflops_range: tuple[float, float] | None  # min and max over feasible samples
    feasible_params_range: tuple[int, int] | None


def dry_run(config: StudyConfig, samples: int = 100) -> DryRun:
    """Sample candidates at random and measure their cost: the share inside the constraints, and its range."""
    dataset = load_dataset(config.dataset, image_size=config.image_size)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=config.seed),
                                directions=[o.direction for o in config.objectives])
    valid, feasible, invalid = [], [], 0
    for _ in range(samples):
        trial = study.ask()
        try:
            spec = spec_for_data(sample_spec(trial, config), dataset)
        except (SpecError, BadInputError):
            invalid += 1
            continue
        cost = count_cost(spec, dataset.image_size)
        valid.append(cost)
        measured = {"gflops": cost.gflops, "params": cost.params, "activations": cost.activations}  # no latency
        if all(v <= 0 for v in constraint_values(config, measured).values()):
            feasible.append(cost)

    def span(costs: list[Any], attr: str) -> Any:
        return (min(getattr(c, attr) for c in costs), max(getattr(c, attr) for c in costs)) if costs else None

    return DryRun(
        space_size=space_size(config), samples=samples, invalid=invalid, feasible=len(feasible),
        gflops_range=span(valid, "gflops"), params_range=span(valid, "params"),
        feasible_gflops_range=span(feasible, "gflops"), feasible_params_range=span(feasible, "params"),
    )


def record_of(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """The record stored with a trial."""
    return TrialRecord.from_attrs(trial.user_attrs)
