"""Multi-objective asynchronous successive halving (MO-ASHA) for studies with two or more objectives.

Optuna cannot prune a multi-objective trial (`Trial.report` raises there), so the rungs live in the trial
records: at each rung (epochs `min_epochs * eta**k`, below the recipe's epochs) a trial stores its objective
values, reads the values every trial stored at that rung from the storage, and goes on only if it is among
the top 1/eta of them (Li et al. 2020, ASHA; Schmucker et al. 2021 for the multi-objective order). No trial
waits for a rung to fill: a trial goes on while fewer than eta trials have reached its rung (too few to judge
it against, as in Syne Tune's stopping rungs), and from then on only if the promotion rule keeps it: by default
the top n // eta + 1 of the n there (PROMOTION_RULES; chosen on the recorded benchmark, README "The search at
equal compute"). (Optuna's single-objective SuccessiveHalvingPruner instead lets only the best so far go on; measured on
the quickstart with early stopping, that stopped 9 of 10 trials, every one behind the first, most accurate
baseline, and left a front of one network.)

The order: non-dominated sorting rank first; within a rank, the epsilon-net of Schmucker et al. (objectives
scaled to [0, 1] over the rung, all turned to minimisation; the point best in the first objective first, then
repeatedly the point farthest, in Euclidean distance, from those already taken), which spreads the promoted
trials along the front instead of crowding one end. Ties that remain keep the trials' order of arrival.
Plain numpy: no Optuna, no torch (the MOASHA class takes any object with Optuna's Study and Trial methods).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from resnet_bench.errors import is_positive_int
from resnet_bench.pareto import pareto_ranks


def rung_epochs(min_epochs: int, reduction_factor: int, epochs: int) -> tuple[int, ...]:
    """The epochs after which a trial is judged: min_epochs * eta**k, for every k that falls before `epochs`."""
    rungs, epoch = [], min_epochs
    while epoch < epochs:
        rungs.append(epoch)
        epoch *= reduction_factor
    return tuple(rungs)


def most_brackets(min_epochs: int, reduction_factor: int, epochs: int) -> int:
    """The most brackets a schedule of `epochs` takes: one per rung, and one that judges nobody."""
    return len(rung_epochs(min_epochs, reduction_factor, epochs)) + 1


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


# How many of the n trials at a rung go on: n // eta (ASHA's top 1/eta); one more (Syne Tune's count); or the top
# n // eta and every other point of the rung's front, up to n // eta more (the front is never cut for its size
# alone). Chosen on the recorded benchmark: README, "The search at equal compute".
PROMOTION_RULES = ("eta", "eta+1", "front")
DEFAULT_PROMOTION_RULE = "eta+1"  # chosen by the race at equal compute: README, "The search at equal compute"


def promoted(points: Sequence[Sequence[float]], directions: Sequence[str], reduction_factor: int,
             rule: str = DEFAULT_PROMOTION_RULE) -> list[int]:
    """The indices of the points that go on, by the rule, once at least eta trials are at the rung."""
    order = promotion_order(points, directions)
    top = len(points) // reduction_factor
    if rule == "eta":
        return order[:top]
    if rule == "eta+1":
        return order[: top + 1]
    if rule == "front":
        ranks = pareto_ranks(np.asarray(points, dtype=float), directions)
        front = [i for i in order[top:] if ranks[i] == 1][:top]
        return order[:top] + front
    raise ValueError(f"rule={rule!r} is not accepted; use one of {', '.join(PROMOTION_RULES)}")


def goes_on(mine: int, points: Sequence[Sequence[float]], directions: Sequence[str], reduction_factor: int,
            rule: str = DEFAULT_PROMOTION_RULE) -> bool:
    """Whether point `mine` (an index of `points`, every trial that reached this rung) trains on: while fewer
    than eta trials are at the rung, yes; then only if the rule promotes it."""
    if len(points) < reduction_factor:
        return True
    return mine in promoted(points, directions, reduction_factor, rule)


RUNGS_ATTR = "rungs"  # the trial attribute that holds its rung values: {"epoch": [objective values]}
BRACKET_ATTR = "bracket"  # the trial attribute that holds its bracket (absent: bracket 0, the only one of one)


def bracket_weights(brackets: int, reduction_factor: int) -> list[float]:
    """The share of trials each bracket gets, bracket 0 (judged from the first rung) first: Hyperband's counts of
    configurations (Li et al. 2018, with s_max = brackets - 1), so that each bracket spends about the same training:
    bracket b starts brackets / (brackets - b) * eta**(brackets - 1 - b) of them, normalised."""
    counts = [brackets / (brackets - b) * reduction_factor ** (brackets - 1 - b) for b in range(brackets)]
    return [c / sum(counts) for c in counts]


def draw_bracket(seed: int | None, number: int, weights: Sequence[float]) -> int:
    """Trial `number`'s bracket, drawn with these weights from the study's seed and the number alone, so that a
    replay and the sweep of the same seed draw alike."""
    return random.Random(f"{seed}:{number}").choices(range(len(weights)), weights)[0]


class MOASHA:
    """Multi-objective asynchronous successive halving for any Optuna study, shaped like Optuna's pruners.

    Call `should_stop(study, trial, epoch, values)` after each epoch of an objective with the objective values
    measured then (in the study's order of directions); at a rung it stores them in the trial's `rungs` user
    attribute, reads every trial's values at that rung from the study's storage (any storage, any number of
    workers), and answers whether this trial stops. Between rungs it answers False. The stopped trial's values
    are the caller's to return (the values at its rung, say).

    With `brackets` > 1 it is asynchronous Hyperband (Li et al. 2020): each trial is drawn into a bracket b (in
    Hyperband's proportions, `bracket_weights`, from the trial's number and `seed`, and kept in its `bracket` user
    attribute) and is judged only from rung b on, against the trials of its own bracket; bracket 0 is plain MO-ASHA,
    and a bracket past the last rung trains every trial to the end. A network the first rung would wrongly stop
    can then still be found, at the price of training some trials longer before they are judged.
    """

    def __init__(self, *, min_epochs: int, reduction_factor: int, directions: Sequence[str],
                 max_epochs: int | None = None, rule: str = DEFAULT_PROMOTION_RULE, brackets: int = 1,
                 seed: int | None = None) -> None:
        if not is_positive_int(min_epochs):
            raise ValueError(f"min_epochs={min_epochs!r} is not accepted; it must be an integer >= 1")
        if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int) or reduction_factor < 2:
            raise ValueError(f"reduction_factor={reduction_factor!r} is not accepted; it must be an integer >= 2")
        directions = [getattr(d, "name", d).lower() if not isinstance(d, str) else d for d in directions]
        if not directions or any(d not in ("maximize", "minimize") for d in directions):
            raise ValueError(f"directions={directions!r} is not accepted; give one of maximize or minimize per "
                             "objective")
        if max_epochs is not None and not is_positive_int(max_epochs):
            raise ValueError(f"max_epochs={max_epochs!r} is not accepted; it must be an integer >= 1 or None")
        if rule not in PROMOTION_RULES:
            raise ValueError(f"rule={rule!r} is not accepted; use one of {', '.join(PROMOTION_RULES)}")
        most = most_brackets(min_epochs, reduction_factor, max_epochs) if max_epochs is not None else None
        if not is_positive_int(brackets) or (most is not None and brackets > most):
            raise ValueError(f"brackets={brackets!r} is not accepted; it must be an integer from 1 to "
                             f"{most if most is not None else 'the number of rungs + 1'} (1: no brackets)")
        self.min_epochs, self.reduction_factor, self.rule = min_epochs, reduction_factor, rule
        self.directions, self.max_epochs = list(directions), max_epochs
        self.brackets, self.seed = brackets, seed
        self._weights = bracket_weights(brackets, reduction_factor)

    def is_rung(self, epoch: int, trial: Any = None) -> bool:
        """Whether a trial is judged after this epoch: min_epochs * eta**k, before max_epochs; given the trial, only
        from its bracket's first rung on (min_epochs * eta**bracket)."""
        if self.max_epochs is not None and epoch >= self.max_epochs:
            return False
        rung = self.min_epochs * self.reduction_factor ** (self.bracket(trial) if trial is not None else 0)
        while rung < epoch:
            rung *= self.reduction_factor
        return rung == epoch

    def bracket(self, trial: Any) -> int:
        """The trial's bracket: kept in its user attributes once drawn (a retry that copies them keeps it)."""
        if self.brackets == 1:
            return 0
        kept = trial.user_attrs.get(BRACKET_ATTR)
        if kept is not None:
            return int(kept)
        drawn = draw_bracket(self.seed, trial.number, self._weights)
        trial.set_user_attr(BRACKET_ATTR, drawn)
        return drawn

    def should_stop(self, study: Any, trial: Any, epoch: int, values: Sequence[float]) -> bool:
        """Store the trial's values at a rung epoch, then decide from every trial's values at that rung."""
        if len(values) != len(self.directions):
            raise ValueError(f"values has {len(values)} objectives where directions has {len(self.directions)}")
        if not self.is_rung(epoch, trial):
            return False
        key = str(epoch)
        rungs = dict(trial.user_attrs.get(RUNGS_ATTR) or {})
        rungs[key] = [float(v) for v in values]
        trial.set_user_attr(RUNGS_ATTR, rungs)
        return not self._goes_on(study, trial.number, epoch, rungs[key], self.bracket(trial))

    def promotable(self, study: Any, number: int, epoch: int) -> bool:
        """Whether trial `number`, stopped at rung `epoch`, would go on now that more trials have reached that rung
        (asynchronous successive halving's promotion, Li et al. 2020): what the sweep asks before it revives a
        stopped network that the sampler proposes again."""
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        values = ((trial.user_attrs.get(RUNGS_ATTR) or {}) if trial is not None else {}).get(str(epoch))
        return values is not None and self._goes_on(study, number, epoch, values,
                                                    int(trial.user_attrs.get(BRACKET_ATTR, 0)))

    def _goes_on(self, study: Any, number: int, epoch: int, values: Sequence[float], bracket: int = 0) -> bool:
        key = str(epoch)
        at_rung = sorted((t.number, t.user_attrs[RUNGS_ATTR][key]) for t in study.get_trials(deepcopy=False)
                         if key in (t.user_attrs.get(RUNGS_ATTR) or {})
                         and int(t.user_attrs.get(BRACKET_ATTR, 0)) == bracket)
        numbers = [n for n, _ in at_rung]
        if number not in numbers:  # a storage that has not seen this trial's write yet: judge it as written
            at_rung.append((number, list(values)))
            numbers.append(number)
        return goes_on(numbers.index(number), [v for _, v in at_rung], self.directions, self.reduction_factor,
                       self.rule)
