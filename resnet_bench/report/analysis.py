"""From a study's trials to what the report says: ranks, the front, intervals, hypervolume, the summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from resnet_bench.pareto import hypervolume_curve, pareto_ranks
from resnet_bench.report.stats import wilson_interval
from resnet_bench.search.config import CONSTRAINTS
from resnet_bench.search.records import (
    DUPLICATE, FAILED, INFEASIBLE, RUNNING, STOPPED, TRAINED, WAITING, StudyTrials,
)

STATUS_ORDER = (TRAINED, STOPPED, INFEASIBLE, DUPLICATE, FAILED, RUNNING, WAITING)
ACCURACY = "val_accuracy"
# Columns the analysis adds to each trial's row.
ADDED_COLUMNS = ("rank", "on_front", "val_low", "val_high", "test_low", "test_high", "hypervolume_so_far")
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
    tied: dict[str, Any] | None  # the cheapest trained trial whose interval overlaps the best one's
    published: pd.DataFrame = field(default_factory=pd.DataFrame)  # see report/references.py

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
    best, tied = _best_and_tied(trials[trials["status"] == TRAINED], cost)
    counts = {s: int((trials["status"] == s).sum()) for s in STATUS_ORDER}
    return Report(
        study=study, trials=trials, front=front.reset_index(drop=True), cost_metric=cost, counts=counts,
        compute_seconds=float(trials["trial_seconds"].sum(skipna=True)),
        train_seconds=float(trials["train_seconds"].sum(skipna=True)),
        reference=reference, hypervolume=hypervolume, best=best, tied=tied,
        published=published if published is not None else pd.DataFrame(),
    )


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


def _best_and_tied(trained: pd.DataFrame, cost: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The highest validation accuracy (the cheaper of equals), and the cheapest trained network whose 95%
    interval overlaps the best one's: no measurement on this split tells the two apart."""
    scored = trained[trained[ACCURACY].notna() & trained["val_low"].notna() & trained[cost].notna()]
    if scored.empty:
        return None, None
    best = scored.sort_values([ACCURACY, cost, "number"], ascending=[False, True, True]).iloc[0]
    overlapping = scored[scored["val_high"] >= best["val_low"]]
    tied = overlapping.sort_values([cost, ACCURACY, "number"], ascending=[True, False, True]).iloc[0]
    return _plain(best), _plain(tied)


def _plain(row: pd.Series) -> dict[str, Any]:
    return {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
