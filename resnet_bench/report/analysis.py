"""From a study's trials to what the report says: ranks, the front, intervals, hypervolume, the summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from resnet_bench.correctness import unpack_correct
from resnet_bench.pareto import hypervolume, hypervolume_curve, pareto_ranks
from resnet_bench.report.confirmation import Confirmation, confirmation
from resnet_bench.estimates import estimate_value
from resnet_bench.report.stats import kendall_tau, mcnemar_exact, wilson_interval
from resnet_bench.search.config import CONSTRAINTS
from resnet_bench.search.records import (
    DUPLICATE,
    FAILED,
    INFEASIBLE,
    RUNNING,
    STOPPED,
    TRAINED,
    WAITING,
    StudyTrials,
)

STATUS_ORDER = (TRAINED, STOPPED, INFEASIBLE, DUPLICATE, FAILED, RUNNING, WAITING)
ACCURACY = "val_accuracy"
# Columns the analysis adds to each trial's row.
ADDED_COLUMNS = ("rank", "on_front", "val_low", "val_high", "test_low", "test_high", "p_vs_best", "hypervolume_so_far")
TIE_P = 0.05  # a network is tied with the best while the paired test's p-value is at least this
PAIRED_TEST = "McNemar's exact test"
INTERVALS = "overlapping 95% Wilson intervals"  # the tie rule where a trial stored no per-image correctness
WORST_MARGIN = 0.1  # a reference taken from the data sits 10% beyond the worst trained value


@dataclass(frozen=True)
class Reference:
    """The point the hypervolume is measured from, and where each coordinate came from."""

    point: dict[str, float]  # objective metric -> value
    origin: dict[str, str]  # objective metric -> the study file, a documented default, a constraint, or the data

    @property
    def comparable(self) -> bool:
        """False when a coordinate was taken from this study's own trials: its hypervolume compares with nothing."""
        return not any(o.startswith("worst") for o in self.origin.values())


MIN_TRIALS_FOR_TAU = 8  # fewer trials trained to the end than this: too few to tell how well a rung ranks them


@dataclass(frozen=True)
class RungTau:
    """How well one rung's estimate ranked the trials that went on to the end."""

    epoch: int
    estimate: str  # estimates.RUNG_ESTIMATES
    trials: int  # trained to the end with a history that has this rung's estimate
    tau: float | None  # None: fewer than MIN_TRIALS_FOR_TAU trials, or no spread to rank

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "estimate": self.estimate, "trials": self.trials, "tau": self.tau}


def rung_taus(study: StudyTrials) -> list[RungTau]:
    """Per rung: Kendall's tau between the study's rung estimate at that rung and the final validation accuracy,
    over the trials trained to their recipe's epochs whose history has the estimate at that rung. They are the
    trials that went on past every rung, so the ranking is measured among the better ones: a lower bound."""
    out = []
    for epoch in study.rungs:
        pairs = []
        for history in study.histories.values():
            if len(history) <= epoch:
                continue
            try:
                pairs.append((estimate_value(study.rung_estimate, history[:epoch]), float(history[-1]["val_accuracy"])))
            except (ValueError, KeyError):  # an estimate this trial's epoch did not measure
                continue
        tau = kendall_tau(*zip(*pairs, strict=True)) if len(pairs) >= MIN_TRIALS_FOR_TAU else None
        out.append(RungTau(epoch=epoch, estimate=study.rung_estimate, trials=len(pairs), tau=tau))
    return out


@dataclass
class Report:
    """Everything the report shows, as plain values."""

    study: StudyTrials
    trials: pd.DataFrame  # the study's rows with ADDED_COLUMNS
    front: pd.DataFrame  # rank-1 rows, cheapest first
    cost_metric: str  # the first minimised objective: the axis of "cheapest"
    counts: dict[str, int]  # trials by status
    compute_seconds: float  # wall time of every ended trial (cost, training, storage)
    train_seconds: float  # training alone
    reference: Reference | None  # None while no trial is trained
    hypervolume: float | None
    best: dict[str, Any] | None  # the trained trial of highest validation accuracy
    # The cheapest trained trial tied with the best: McNemar's exact test on their per-image validation correctness
    # gives p >= 0.05 (its p-value is the row's p_vs_best); `tie_rule` says which rule decided.
    tied: dict[str, Any] | None
    published: pd.DataFrame = field(default_factory=pd.DataFrame)  # see report/references.py
    tie_rule: str = PAIRED_TEST  # PAIRED_TEST, or INTERVALS when a trial stored no per-image correctness
    # Early stopping: stopped trials by their last rung (epochs trained -> trials), and the training seconds it
    # saved against training each of them to its recipe's epochs (each one's seconds per epoch, times the epochs
    # it skipped: an estimate).
    stopped_at: dict[int, int] = field(default_factory=dict)
    saved_seconds: float = 0.0
    confirmed: Confirmation | None = None  # the last `confirm` command's runs, by network (None: never confirmed)
    # How far the rungs can be trusted: per rung epoch, Kendall's tau between the study's rung estimate there and
    # the final validation accuracy, over the trials trained to the end (None: fewer than MIN_TRIALS_FOR_TAU).
    rung_taus: list[RungTau] = field(default_factory=list)
    # Did the search beat each trained baseline? (baseline row, the search's most accurate trained network at no
    # more cost, or None, and McNemar's p between the two, or None)
    versus: list[tuple[dict[str, Any], dict[str, Any] | None, float | None]] = field(default_factory=list)
    # The search at its cost: after each ended trial that trained (trained, stopped at a rung, or failed after
    # some epochs), in the order they ended, the training seconds spent so far by all of them and the hypervolume
    # of the trials trained to the end among them (columns seconds, hypervolume; empty without a reference).
    by_seconds: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["seconds", "hypervolume"]))
    # Wall time: from the first trial's start to the last one's end, and the part of it with a trial running (the
    # union of the trials' spans: a run interrupted and resumed later leaves out the pause).
    wall_seconds: float = 0.0
    running_seconds: float = 0.0

    @property
    def directions(self) -> list[str]:
        return [d for _, d in self.study.objectives]

    @property
    def metrics(self) -> list[str]:
        return [m for m, _ in self.study.objectives]


def resolve_reference(study: StudyTrials, trained: pd.DataFrame) -> Reference | None:
    """The hypervolume's reference point: the study file's [report] reference_point; for a metric it leaves
    out, accuracy 0, else the bound of a constraint on that metric, else 10% beyond the worst trained value
    (flagged: such a hypervolume is not comparable with another study's)."""
    point, origin = {}, {}
    bounds = {metric: study.constraints[key] for key, metric in CONSTRAINTS.items() if key in study.constraints}
    for metric, direction in study.objectives:
        if metric in study.reference_point:
            point[metric], origin[metric] = study.reference_point[metric], "the study file"
        elif metric == ACCURACY:
            point[metric], origin[metric] = 0.0, "the default for accuracy"
        elif metric in bounds:
            point[metric], origin[metric] = bounds[metric], f"the constraint on {metric}"
        elif len(trained):
            values = trained[metric].astype(float)
            worst = values.max() if direction == "minimize" else values.min()
            step = WORST_MARGIN * abs(worst) or WORST_MARGIN
            point[metric] = float(worst + step if direction == "minimize" else worst - step)
            origin[metric] = "worst trained value + 10% (not comparable across studies)"
        else:
            return None
    return Reference(point, origin)


def build_report(study: StudyTrials, published: pd.DataFrame | None = None) -> Report:
    """Ranks by non-dominated sorting over the study's own objectives, the front, intervals, hypervolume."""
    metrics = [m for m, _ in study.objectives]
    directions = [d for _, d in study.objectives]
    trials = study.trials.copy()
    # Ranks among the trained trials whose objectives were all measured; the rest have none.
    rankable = (trials["status"] == TRAINED) & trials[metrics].notna().all(axis=1)
    trained = trials[rankable]
    points = trained[metrics].to_numpy(dtype=float)
    trials["rank"] = pd.Series(pd.NA, index=trials.index, dtype="Int64")
    if len(trained):
        trials.loc[rankable, "rank"] = pareto_ranks(points, directions)
    trials["on_front"] = (trials["rank"] == 1).fillna(False).astype(bool)
    _intervals(trials, "val")
    _intervals(trials, "test")
    trials["p_vs_best"] = pd.Series(pd.NA, index=trials.index, dtype="Float64")  # filled by _best_and_tied
    trials["hypervolume_so_far"] = pd.Series(pd.NA, index=trials.index, dtype="Float64")

    reference = resolve_reference(study, trained)
    hypervolume = None
    if reference is not None and len(trained):
        ref = [reference.point[m] for m in metrics]
        curve = pd.Series(hypervolume_curve(points, ref, directions), index=trained["number"].to_numpy())
        # After each trial, in number order: the hypervolume of the trained trials so far.
        so_far = curve.reindex(trials["number"].to_numpy()).ffill().fillna(0.0)
        trials["hypervolume_so_far"] = pd.array(so_far.to_numpy(), dtype="Float64")
        hypervolume = float(curve.iloc[-1])
    elif reference is not None:
        trials["hypervolume_so_far"] = pd.array(np.zeros(len(trials)), dtype="Float64")
        hypervolume = 0.0

    cost = next((m for m, d in study.objectives if d == "minimize"), "gflops")
    front = trials[trials["on_front"]].sort_values([cost, ACCURACY, "number"], ascending=[True, False, True])
    best, tied, tie_rule = _best_and_tied(trials, study.val_correct, cost)
    counts = {s: int((trials["status"] == s).sum()) for s in STATUS_ORDER}
    return Report(
        study=study, trials=trials, front=front.reset_index(drop=True), cost_metric=cost, counts=counts,
        compute_seconds=float(trials["trial_seconds"].sum(skipna=True)),
        train_seconds=float(trials.loc[_trained_here(trials), "train_seconds"].sum()),
        **_wall_time(trials),
        reference=reference, hypervolume=hypervolume, best=best, tied=tied,
        published=published if published is not None else pd.DataFrame(), tie_rule=tie_rule,
        **_early_stopping(trials), confirmed=confirmation(study), versus=_versus(trials, study.val_correct, cost),
        rung_taus=rung_taus(study), by_seconds=hypervolume_by_seconds(trials, rankable, reference, study.objectives),
    )


def _wall_time(trials: pd.DataFrame) -> dict[str, float]:
    """Report.wall_seconds and running_seconds from the trials' start and end times (to the second)."""
    spans = sorted((start, end) for start, end in zip(pd.to_datetime(trials["started"], errors="coerce"),
                                                       pd.to_datetime(trials["completed"], errors="coerce"),
                                                       strict=True) if pd.notna(start) and pd.notna(end))
    if not spans:
        return {"wall_seconds": 0.0, "running_seconds": 0.0}
    running, (start, end) = 0.0, spans[0]
    for next_start, next_end in spans[1:]:
        if next_start > end:  # a pause: nothing ran between `end` and `next_start`
            running += (end - start).total_seconds()
            start = next_start
        end = max(end, next_end)
    running += (end - start).total_seconds()
    return {"wall_seconds": (end - spans[0][0]).total_seconds(), "running_seconds": running}  # `end`: the last end


def _trained_here(trials: pd.DataFrame) -> pd.Series:
    """The trials that spent training seconds of their own: a duplicate carries its twin's, and trained nothing."""
    return (trials["status"] != DUPLICATE) & trials["train_seconds"].notna() & (trials["train_seconds"] > 0)


def hypervolume_by_seconds(trials: pd.DataFrame, rankable: pd.Series, reference: Reference | None,
                           objectives: list[tuple[str, str]]) -> pd.DataFrame:
    """The anytime curve against compute: see Report.by_seconds. Trials end in the order of their `completed`
    time (trial number among equal times); a trial without one (ended by an earlier release) goes by number."""
    spent = trials[_trained_here(trials)]
    if reference is None or not len(spent):
        return pd.DataFrame(columns=["seconds", "hypervolume"])
    order = spent.assign(_ended=pd.to_datetime(spent["completed"], errors="coerce")).sort_values(
        ["_ended", "number"], na_position="first", kind="stable")
    metrics, directions = [m for m, _ in objectives], [d for _, d in objectives]
    ref = [reference.point[m] for m in metrics]
    seconds, volumes, points = [], [], []
    for index, row in order.iterrows():
        if rankable.loc[index]:
            points.append([float(row[m]) for m in metrics])
        seconds.append(float(row["train_seconds"]))
        volumes.append(hypervolume(points, ref, directions) if points else 0.0)
    return pd.DataFrame({"seconds": np.cumsum(seconds), "hypervolume": volumes})


def _versus(trials: pd.DataFrame, val_correct: dict[int, str],
            cost: str) -> list[tuple[dict[str, Any], dict[str, Any] | None, float | None]]:
    """Each trained baseline beside the most accurate trained searched network that costs no more, with the
    paired test's p-value between them where both stored their per-image correctness."""
    trained = trials[(trials["status"] == TRAINED) & trials[ACCURACY].notna() & trials[cost].notna()]
    searched = trained[~trained["is_baseline"]]
    out = []
    for _, baseline in trained[trained["is_baseline"]].iterrows():
        rivals = searched[searched[cost] <= baseline[cost]]
        if rivals.empty:
            out.append((_plain(baseline), None, None))
            continue
        rival = rivals.sort_values([ACCURACY, cost, "number"], ascending=[False, True, True]).iloc[0]
        vectors = _correctness(trained.loc[[baseline.name, rival.name]], val_correct)
        p = mcnemar_exact(vectors[baseline.name], vectors[rival.name]) if vectors else None
        out.append((_plain(baseline), _plain(rival), p))
    return out


def _early_stopping(trials: pd.DataFrame) -> dict[str, Any]:
    """Stopped trials by last rung, and the training seconds saved (estimated from each one's seconds per epoch)."""
    stopped = trials[(trials["status"] == STOPPED) & trials["epochs"].notna() & (trials["epochs"] > 0)]
    at = stopped["epochs"].astype(int).value_counts().sort_index()
    known = stopped[stopped["train_seconds"].notna() & stopped["recipe_epochs"].notna()]
    skipped = (known["recipe_epochs"] - known["epochs"]).clip(lower=0)
    saved = float((known["train_seconds"] / known["epochs"] * skipped).sum())
    return {"stopped_at": {int(k): int(v) for k, v in at.items()}, "saved_seconds": saved}


def _intervals(trials: pd.DataFrame, split: str) -> None:
    """Wilson 95% intervals of `<split>_accuracy` over `<split>_images`."""
    low, high = [], []
    for accuracy, images in zip(trials[f"{split}_accuracy"], trials[f"{split}_images"], strict=True):
        if pd.isna(accuracy) or pd.isna(images) or images <= 0:
            low.append(math.nan)
            high.append(math.nan)
            continue
        lo, hi = wilson_interval(round(float(accuracy) * int(images)), int(images))
        low.append(lo)
        high.append(hi)
    trials[f"{split}_low"] = pd.array(low, dtype="Float64")
    trials[f"{split}_high"] = pd.array(high, dtype="Float64")  # NaN becomes <NA>


def _best_and_tied(trials: pd.DataFrame, val_correct: dict[int, str],
                   cost: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """The trained trial of highest validation accuracy (the cheaper of equals), and the cheapest trained trial
    that no measurement on the validation split tells apart from it: McNemar's exact test on their per-image
    correctness gives p >= 0.05. Fills each trained trial's p_vs_best. A study whose trials stored no
    correctness (made by an earlier release) falls back to overlapping Wilson intervals."""
    trained = trials[trials["status"] == TRAINED]
    scored = trained[trained[ACCURACY].notna() & trained["val_low"].notna() & trained[cost].notna()]
    if scored.empty:
        return None, None, PAIRED_TEST
    best = scored.sort_values([ACCURACY, cost, "number"], ascending=[False, True, True]).iloc[0]
    vectors = _correctness(scored, val_correct)
    if vectors is None:
        rule, tied_rows = INTERVALS, scored[scored["val_high"] >= best["val_low"]]
    else:
        p = {index: mcnemar_exact(vectors[index], vectors[best.name]) for index in scored.index}
        trials.loc[list(p), "p_vs_best"] = list(p.values())
        rule, tied_rows = PAIRED_TEST, scored[[p[index] >= TIE_P for index in scored.index]]
    tied = tied_rows.sort_values([cost, ACCURACY, "number"], ascending=[True, False, True]).iloc[0]
    return _plain(trials.loc[best.name]), _plain(trials.loc[tied.name]), rule


def _correctness(rows: pd.DataFrame, val_correct: dict[int, str]) -> dict[Any, Any] | None:
    """Each row's per-image validation correctness, by row index; None unless every row stored one, over the
    same number of images."""
    vectors = {}
    for index, row in rows.iterrows():
        text = val_correct.get(int(row["number"]))
        if not text or pd.isna(row["val_images"]) or int(row["val_images"]) != int(rows["val_images"].iloc[0]):
            return None
        try:
            vectors[index] = unpack_correct(text, int(row["val_images"]))
        except ValueError:
            return None
    return vectors


def _plain(row: pd.Series) -> dict[str, Any]:
    return {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
