"""A search replayed on a recorded benchmark: no training, the real sampler and the sweep's own early stopping.

The recorded benchmark (benchmarks/bench_space.py) holds every network of a space trained to the end, every epoch
kept. A replay runs the search that a sweep would run on that space, with W simulated workers: Optuna's ask and
tell on an in-memory study with the study's own sampler (search/study.make_sampler), each epoch lasting its
recorded seconds, and at each rung the same MOASHA object and rung estimate as the sweep (search/early_stopping.py,
estimates.py). A network proposed again is answered from the study, as the sweep answers it (not trained again).
Its result is the anytime hypervolume: the hypervolume of the front of the trials trained to the full budget
against the training seconds spent so far (stopped trials' seconds included).

What it leaves out: the time outside training (evaluation, the storage, proposing) except an estimate's own
seconds, and that W workers on one machine share it (every epoch takes the seconds it took alone).
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from resnet_bench.errors import BadInputError
from resnet_bench.estimates import estimate_value, extra_seconds
from resnet_bench.pareto import hypervolume
from resnet_bench.search.config import StudyConfig
from resnet_bench.search.early_stopping import MOASHA
from resnet_bench.search.space import sample_spec
from resnet_bench.search.study import make_sampler
from resnet_bench.spec import ResNetSpec, SpecError

MAX_DUPLICATES_IN_A_ROW = 50  # proposals answered from the study before a worker gives up (the sweep's rule)


@dataclass(frozen=True)
class Curve:
    """One network's recorded run: its place in the space, its cost, and what every epoch measured."""

    spec: str  # its one-line form as trained (the data set's channels and classes included)
    params: dict[str, Any]  # the study's parameters that propose it (trial.params)
    metrics: dict[str, float]  # gflops, params: what the objectives besides accuracy read
    history: tuple[dict[str, Any], ...]  # per epoch: val_accuracy, train_loss, seconds, the estimates' fields

    @property
    def seconds(self) -> float:
        """Training seconds of the whole run."""
        return sum(h["seconds"] for h in self.history)


@dataclass(frozen=True)
class AnytimePoint:
    """The search's state when a trial ended at the full budget."""

    seconds: float  # training seconds spent by then, by every worker (stopped trials included)
    hypervolume: float  # of the front of the trials trained to the full budget by then
    full: int  # trials trained to the full budget by then


@dataclass
class ReplayResult:
    """What one replayed search did."""

    anytime: list[AnytimePoint] = field(default_factory=list)
    decisions: list[tuple[int, int, bool]] = field(default_factory=list)  # (trial number, rung epoch, goes on)
    epochs: dict[int, int] = field(default_factory=dict)  # trial number -> epochs it trained
    proposed: dict[int, str] = field(default_factory=dict)  # trial number -> the network proposed ("" infeasible)
    wall_seconds: float = 0.0  # simulated time when the last trial ended
    full: int = 0  # trials trained to the full budget
    stopped: int = 0  # trials stopped at a rung
    duplicates: int = 0  # proposals answered from the study
    revived: int = 0  # stopped networks trained on from their rung when proposed again (ReplaySettings.revive)
    seconds: float = 0.0  # training seconds spent in all

    def hypervolume_at(self, seconds: float) -> float:
        """The anytime hypervolume after `seconds` of training (0 before the first full trial)."""
        best = 0.0
        for point in self.anytime:
            if point.seconds > seconds:
                break
            best = point.hypervolume
        return best

    def seconds_to(self, target: float) -> float:
        """The training seconds the search took to reach a hypervolume (inf if it never did)."""
        return next((p.seconds for p in self.anytime if p.hypervolume >= target - 1e-12), math.inf)


@dataclass(frozen=True)
class ReplaySettings:
    """How one replayed search runs."""

    sampler: str = "tpe"  # tpe, nsga2 or random: search/study.make_sampler, seeded with `seed`
    seed: int = 0
    workers: int = 4
    early_stopping: bool = True
    rung_estimate: str = "val_accuracy"
    promotion: str = "eta"
    brackets: int = 1  # asynchronous Hyperband's brackets (MOASHA); 1: plain MO-ASHA
    min_epochs: int = 1
    reduction_factor: int = 3
    budget_seconds: float = math.inf  # no trial starts once this much training is spent
    max_trials: int | None = None  # trials started (not counting proposals answered from the study)
    order: tuple[int, ...] | None = None  # indices of the curves, proposed in this order (enqueued) before sampling
    skip_missing: bool = False  # a proposal the table does not hold: refused (failed) instead of an error
    # A stopped network proposed again trains on from its rung when it is now in its rung's top (MOASHA.promotable):
    # the new trial resumes from the stopped one's state, its seconds from the rung on only.
    revive: bool = False


def replay(curves: Sequence[Curve], config: StudyConfig, settings: ReplaySettings = ReplaySettings(), *,
           stopper: Any = None) -> ReplayResult:
    """Replay a search of `config`'s space on the recorded curves (see the module's docstring).

    `stopper` replaces the settings' MOASHA with any object of its two methods, `is_rung(epoch, trial)` and
    `should_stop(study, trial, epoch, values)` (another scheduler, driven after each epoch it asks for)."""
    if settings.workers < 1:
        raise BadInputError(f"workers={settings.workers} is not accepted; it must be an integer >= 1")
    return _Replay(curves, config, settings, stopper).run()


class _Replay:
    """One replayed search: the study, the simulated workers' events in time order, and what it did so far."""

    def __init__(self, curves: Sequence[Curve], config: StudyConfig, settings: ReplaySettings, stopper: Any) -> None:
        self.curves, self.config, self.settings = curves, config, settings
        self.by_spec = {c.spec: c for c in curves}
        self.metrics = [o.metric for o in config.objectives]
        directions = [o.direction for o in config.objectives]
        self.directions, self.reference = directions, [config.reference_point[m] for m in self.metrics]
        self.epochs = len(curves[0].history)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(directions=directions, sampler=make_sampler(
            dataclasses.replace(config, sampler=settings.sampler, seed=settings.seed)))
        self.queue = collections.deque(settings.order or ())  # proposed first, in this order: asked as enqueued
        for index in self.queue:
            self.study.enqueue_trial(curves[index].params)
        self.shape = ResNetSpec.parse(curves[0].spec)  # the data set's channels and classes, as the table trained
        if stopper is None and settings.early_stopping:
            stopper = MOASHA(min_epochs=settings.min_epochs, reduction_factor=settings.reduction_factor,
                             directions=directions, max_epochs=self.epochs, rule=settings.promotion,
                             brackets=settings.brackets, seed=settings.seed)
        self.stopper = stopper
        self.result, self.finished, self.front_points = ReplayResult(), {}, []
        self.stopped_at: dict[str, tuple[int, int]] = {}  # spec -> (the stopped trial's number, its rung)
        self.started = 0
        self.tie = itertools.count()  # events at one time: in the order they were made
        self.events: list[tuple[float, int, str, Any]] = [
            (0.0, next(self.tie), "free", None) for _ in range(settings.workers)]

    def run(self) -> ReplayResult:
        """Every event in time order: a free worker proposes and starts a trial, an epoch's end judges it."""
        settings, result = self.settings, self.result
        while self.events:
            now, _, kind, payload = heapq.heappop(self.events)
            if kind == "free":
                if result.seconds >= settings.budget_seconds or (
                        settings.max_trials is not None and self.started >= settings.max_trials):
                    continue
                proposed = self.propose()
                if proposed is None:
                    continue
                self.started += 1
                trial, curve, first = proposed
                self.train_epoch(now, trial, curve, first)
            elif self.epoch_ended(now, *payload):
                heapq.heappush(self.events, (now, next(self.tie), "free", None))
        return result

    def train_epoch(self, now: float, trial: optuna.Trial, curve: Curve, epoch: int) -> None:
        """The epoch's end, as an event at the time it ends."""
        seconds = _epoch_seconds(trial, curve, epoch, self.stopper, self.settings)
        heapq.heappush(self.events, (now + seconds, next(self.tie), "epoch", (trial, curve, epoch, seconds)))

    def values(self, curve: Curve, epoch: int) -> list[float]:
        """The objectives' values of a network after `epoch` epochs."""
        return [curve.history[epoch - 1]["val_accuracy"] if m == "val_accuracy" else float(curve.metrics[m])
                for m in self.metrics]

    def propose(self) -> tuple[optuna.Trial, Curve, int] | None:
        """A new trial, its network's curve and the epoch it starts from; None when the sampler only repeats."""
        study, result, settings = self.study, self.result, self.settings
        for _ in range(MAX_DUPLICATES_IN_A_ROW):
            trial = study.ask()
            try:
                spec = sample_spec(trial, self.config)
            except (SpecError, BadInputError):
                result.proposed[trial.number] = ""
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            line = dataclasses.replace(spec, in_channels=self.shape.in_channels,
                                       num_classes=self.shape.num_classes).format()
            result.proposed[trial.number] = line
            curve = self.curves[self.queue.popleft()] if self.queue else self.by_spec.get(line)
            if curve is None and settings.skip_missing:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            if curve is None:
                raise BadInputError(f"the table has no network {line}: record the whole space")
            if curve.spec in self.stopped_at and settings.revive and self.stopper.promotable(
                    study, *self.stopped_at[curve.spec]):
                _, rung = self.stopped_at.pop(curve.spec)
                del self.finished[curve.spec]
                result.revived += 1
                return trial, curve, rung + 1
            if curve.spec in self.finished:  # answered from the study: not trained again
                study.tell(trial, self.finished[curve.spec])
                result.duplicates += 1
                continue
            return trial, curve, 1
        return None

    def epoch_ended(self, now: float, trial: optuna.Trial, curve: Curve, epoch: int, seconds: float) -> bool:
        """Account for an epoch of `seconds` that ended at `now`, and judge the trial at a rung; True when its worker
        is free."""
        result, stopper = self.result, self.stopper
        result.seconds += seconds
        result.epochs[trial.number], result.wall_seconds = epoch, now
        if epoch == self.epochs:
            self.finished[curve.spec] = self.values(curve, epoch)
            self.study.tell(trial, self.finished[curve.spec])
            result.full += 1
            self.front_points.append(self.finished[curve.spec])
            result.anytime.append(AnytimePoint(
                result.seconds, hypervolume(self.front_points, self.reference, self.directions), result.full))
            return True
        if stopper is None or not stopper.is_rung(epoch, trial):
            self.train_epoch(now, trial, curve, epoch + 1)
            return False
        estimate = [estimate_value(self.settings.rung_estimate, curve.history[:epoch]) if m == "val_accuracy"
                    else v for m, v in zip(self.metrics, self.values(curve, epoch), strict=True)]
        goes = not stopper.should_stop(self.study, trial, epoch, estimate)
        result.decisions.append((trial.number, epoch, goes))
        if goes:
            self.train_epoch(now, trial, curve, epoch + 1)
            return False
        self.finished[curve.spec] = self.values(curve, epoch)  # the sweep's stopped trial: its values at the rung
        self.stopped_at[curve.spec] = (trial.number, epoch)
        self.study.tell(trial, self.finished[curve.spec])
        result.stopped += 1
        return True


def _epoch_seconds(trial: optuna.Trial, curve: Curve, epoch: int, stopper: Any, settings: ReplaySettings) -> float:
    """An epoch's recorded training seconds, plus the rung estimate's own seconds where it is measured."""
    seconds = curve.history[epoch - 1]["seconds"]
    if stopper is not None and stopper.is_rung(epoch, trial):
        seconds += extra_seconds(settings.rung_estimate, curve.history[epoch - 1])
    return seconds


def curves_of_table(table: dict[str, Any], seed: str = "0") -> list[Curve]:
    """The curves of one seed of a recorded table (benchmarks/bench_space.json's layout)."""
    fields = table["epoch_fields"]
    out = []
    for network in table["networks"]:
        run = network["runs"].get(seed)
        if run is None:
            continue
        history = tuple({f: run[f][e] for f in fields} | {"epoch": e + 1} for e in range(len(run["seconds"])))
        out.append(Curve(spec=network["spec"], params=network["space"],
                         metrics={"gflops": network["gflops"], "params": network["params"]}, history=history))
    return out


def train_everything(curves: Sequence[Curve], config: StudyConfig) -> tuple[float, float]:
    """The training seconds and the hypervolume of training every network to the end."""
    metrics = [o.metric for o in config.objectives]
    points = [[c.history[-1]["val_accuracy"] if m == "val_accuracy" else c.metrics[m] for m in metrics]
              for c in curves]
    reference = [config.reference_point[m] for m in metrics]
    return sum(c.seconds for c in curves), hypervolume(points, reference, [o.direction for o in config.objectives])
