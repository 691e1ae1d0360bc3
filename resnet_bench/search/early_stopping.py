"""Multi-objective asynchronous successive halving (MO-ASHA) for studies with two or more objectives.

Optuna cannot prune a multi-objective trial (`Trial.report` raises there), so the rungs live in the trial
records: at each rung (epochs `min_epochs * eta**k`, below the recipe's epochs) a trial stores its objective
values, reads the values every trial stored at that rung from the storage, and goes on only if it is among
the top 1/eta of them (Li et al. 2020, ASHA; Schmucker et al. 2021 for the multi-objective order). No trial
waits for a rung to fill: a trial goes on while fewer than eta trials have reached its rung (too few to judge
it against, as in Syne Tune's stopping rungs), and from then on only if it is in the top n // eta of the n
there. (Optuna's single-objective SuccessiveHalvingPruner instead lets only the best so far go on; measured on
the quickstart with early stopping, that stopped 9 of 10 trials, every one behind the first, most accurate
baseline, and left a front of one network.)

The order: non-dominated sorting rank first; within a rank, the epsilon-net of Schmucker et al. (objectives
scaled to [0, 1] over the rung, all turned to minimisation; the point best in the first objective first, then
repeatedly the point farthest, in Euclidean distance, from those already taken), which spreads the promoted
trials along the front instead of crowding one end. Ties that remain keep the trials' order of arrival.
Plain numpy: no Optuna, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from resnet_bench.pareto import pareto_ranks


def rung_epochs(min_epochs: int, reduction_factor: int, epochs: int) -> tuple[int, ...]:
    """The epochs after which a trial is judged: min_epochs * eta**k, for every k that falls before `epochs`."""
    rungs, epoch = [], min_epochs
    while epoch < epochs:
        rungs.append(epoch)
        epoch *= reduction_factor
    return tuple(rungs)


def promotion_order(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the points, best first: by non-dominated rank, then by epsilon-net within a rank."""
    array = np.asarray(points, dtype=float)
    if len(array) == 0:
        return []
    ranks = pareto_ranks(array, directions)
    # Scaled to [0, 1] over the rung and turned to minimisation, so that every objective weighs alike.
    signed = np.where([d == "maximize" for d in directions], -array, array)
    span = signed.max(axis=0) - signed.min(axis=0)
    scaled = (signed - signed.min(axis=0)) / np.where(span > 0, span, 1.0)
    order: list[int] = []
    for rank in sorted(set(ranks.tolist())):
        members = [i for i in range(len(array)) if ranks[i] == rank]
        order += _epsilon_net(scaled, members)
    return order


def _epsilon_net(scaled: np.ndarray, members: list[int]) -> list[int]:
    """Members ordered greedily: the best in the first objective, then each time the farthest from those taken."""
    first = min(members, key=lambda i: (scaled[i, 0], i))
    taken, rest = [first], [i for i in members if i != first]
    while rest:
        distance = {i: min(float(np.linalg.norm(scaled[i] - scaled[j])) for j in taken) for i in rest}
        farthest = max(rest, key=lambda i: (distance[i], -i))  # the earlier arrival wins a tie
        taken.append(farthest)
        rest.remove(farthest)
    return taken


def goes_on(mine: int, points: Sequence[Sequence[float]], directions: Sequence[str], reduction_factor: int) -> bool:
    """Whether point `mine` (an index of `points`, every trial that reached this rung) trains on: while fewer
    than eta trials are at the rung, yes; then only in the top n // eta of the order."""
    if len(points) < reduction_factor:
        return True
    return mine in promotion_order(points, directions)[: len(points) // reduction_factor]
