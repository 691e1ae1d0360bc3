"""Proposals the sweep never trains, each stored as a complete trial with its record and Optuna's constraint values.

An infeasible candidate (one the generator refuses, or one outside the study's cost bounds) becomes a complete
trial with positive constraint values and the `infeasible` status: TPE and NSGA-II learn from it and stop proposing
such networks. A duplicate (a network and recipe that some trial of the study trained already) is stored with its
twin's record and values, so the sampler learns the same as from the twin, and is never trained again.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import optuna

from resnet_bench.search.config import CONSTRAINTS, StudyConfig, constraint_values
from resnet_bench.search.records import DUPLICATE, INFEASIBLE, STOPPED, TRAINED, TrialRecord, store_record
from resnet_bench.units import metric_value

# What a duplicate keeps of its own record rather than copying from its twin.
NOT_COPIED_FROM_THE_TWIN = ("status", "reason", "baseline", "baseline_params", "state_file", "trial_seconds",
                            "overhead_seconds", "rungs")


def violations(config: StudyConfig, record: TrialRecord) -> dict[str, float]:
    """Optuna's constraint values, <= 0 where satisfied: `valid` (the generator accepts it), then each bound."""
    measured = {metric: getattr(record, metric) for metric in CONSTRAINTS.values()}
    return {"valid": 0.0, **constraint_values(config, measured)}


def outside_the_constraints(config: StudyConfig, record: TrialRecord, values: dict[str, float]) -> str:
    """Why a candidate is infeasible, e.g. 'outside the constraints: params 305,146 > max_params 300,000'."""
    over = [f"{CONSTRAINTS[key]} {metric_value(CONSTRAINTS[key], getattr(record, CONSTRAINTS[key]))} > {key} "
            f"{metric_value(CONSTRAINTS[key], config.constraints[key])}" for key, v in values.items() if v > 0]
    return "outside the constraints: " + ", ".join(over)


def set_constraints(trial: optuna.Trial, values: dict[str, float]) -> None:
    """Optuna's constraint values of a trial (a value > 0 is violated)."""
    with warnings.catch_warnings():  # a retried trial inherits the same network's values: Optuna warns, rightly ignored
        warnings.filterwarnings("ignore", message=".*is already set", category=UserWarning)
        for key, value in values.items():
            trial.set_constraint(key, value)


def record_infeasible(trial: optuna.Trial, record: TrialRecord, config: StudyConfig, reason: str, started: float,
                      *, invalid: bool = False) -> list[float]:
    """Store a candidate that is never trained; its objective values: the worst accuracy and the measured (or, when
    unknown, infinite) cost. `invalid`: the generator refused it, so every constraint counts as violated."""
    record.status, record.reason = INFEASIBLE, reason
    record.trial_seconds = record.overhead_seconds = time.perf_counter() - started
    if invalid:  # no cost to compare
        set_constraints(trial, {"valid": 1.0, **{k: 1.0 for k in config.constraints}})
    else:
        set_constraints(trial, violations(config, record))
    store_record(trial, record)
    return [0.0 if o.direction == "maximize" else _known_or_inf(getattr(record, o.metric)) for o in config.objectives]


def trained_twin(study: optuna.Study, spec_line: str, recipe: dict[str, Any]) -> optuna.trial.FrozenTrial | None:
    """The first trial of the study (any worker's) that trained this network with this recipe, if any."""
    for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = other.user_attrs
        if attrs.get("status") in (TRAINED, STOPPED) and attrs.get("spec") == spec_line \
                and attrs.get("recipe") == recipe:
            return other
    return None


def record_duplicate(trial: optuna.Trial, record: TrialRecord, twin: optuna.trial.FrozenTrial,
                     started: float) -> list[float]:
    """Store a proposal of a network and recipe trained already, with its twin's record and values."""
    measured = TrialRecord.from_attrs(twin.user_attrs)
    for key, value in vars(measured).items():
        if key not in NOT_COPIED_FROM_THE_TWIN:
            setattr(record, key, value)
    record.status, record.duplicate_of = DUPLICATE, twin.number
    record.reason = f"the same network and recipe as trial {twin.number} ({measured.status}): not trained again"
    record.trial_seconds = record.overhead_seconds = time.perf_counter() - started
    set_constraints(trial, dict(twin.constraints))
    store_record(trial, record)
    return list(twin.values)


def _known_or_inf(value: float | None) -> float:
    return math.inf if value is None else float(value)
