"""Pareto ranks and hypervolume of points in objective space, with mixed directions (the report and early stopping).

Both come from moocore (Lopez-Ibanez et al.'s C implementations): its non-dominated sorting gives equal
points the same rank, and its hypervolume is exact in any dimension. Optuna's own are private API.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np


def _as_points(points: object, directions: Sequence[str]) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.ndim != 2 or array.shape[1] != len(directions):
        raise ValueError(f"points must be an (n, {len(directions)}) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("points must be finite")
    bad = [d for d in directions if d not in ("maximize", "minimize")]
    if bad:
        raise ValueError(f"directions must be maximize or minimize, got {bad}")
    return array


def _maximise(directions: Sequence[str]) -> list[bool]:
    return [d == "maximize" for d in directions]


def pareto_ranks(points: object, directions: Sequence[str]) -> np.ndarray:
    """The non-dominated sorting rank of each point: 1 for the front, 2 for the front without it, and so on.

    A point dominates another when it is at least as good in every objective and better in one; equal points
    do not dominate each other, so duplicates share their rank.
    """
    array = _as_points(points, directions)
    if len(array) == 0:
        return np.zeros(0, dtype=int)
    return moocore.pareto_rank(array, maximise=_maximise(directions)).astype(int) + 1


def hypervolume(points: object, reference: Sequence[float], directions: Sequence[str]) -> float:
    """The volume that the points dominate, bounded by the reference point (0 for no points).

    Points that are not strictly better than the reference in every objective add nothing.
    """
    array = _as_points(points, directions)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (len(directions),) or not np.isfinite(ref).all():
        raise ValueError(f"the reference point must be {len(directions)} finite numbers, got {reference!r}")
    if len(array) == 0:
        return 0.0
    return float(moocore.hypervolume(array, ref=ref, maximise=_maximise(directions)))


def hypervolume_curve(points: object, reference: Sequence[float], directions: Sequence[str]) -> np.ndarray:
    """The hypervolume of the first i points, for i = 1..n: the anytime curve of a search, in trial order."""
    array = _as_points(points, directions)
    return np.array([hypervolume(array[: i + 1], reference, directions) for i in range(len(array))])
