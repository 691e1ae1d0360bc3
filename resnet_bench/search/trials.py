"""A study's trials as a pandas DataFrame: where the report's data leaves Optuna.

Reads any study, also one that workers are still adding to; the report works on the `StudyTrials` this
returns and never imports Optuna.
"""

from __future__ import annotations

import tomllib
from typing import Any

import optuna

from resnet_bench.errors import BadInputError
from resnet_bench.recipe import describe_recipe
from resnet_bench.search.config import StudyConfig, parse_study
from resnet_bench.search.confirm import stored_runs
from resnet_bench.search.domains import StudyFileError
from resnet_bench.search.early_stopping import rung_epochs
from resnet_bench.search.records import (
    FAILED,
    RUNNING,
    TRAINED,
    TRIAL_COLUMNS,
    WAITING,
    StudyTrials,
    TrialRecord,
    spec_cells,
    trial_column_dtypes,
)
from resnet_bench.search.storage import (
    FINGERPRINT_PARTS,
    STUDY_FILE,
    check_schema,
    open_existing_storage,
    safe_url,
    study_names,
)
from resnet_bench.spec import ResNetSpec, SpecError

_STATE = optuna.trial.TrialState


class NoSuchStudyError(BadInputError):
    """A study name that the storage does not hold; the message lists those it does."""


def load_trials(url: str, study_name: str, config: StudyConfig | None = None) -> StudyTrials:
    """Every trial of a study, one flat row each (see records.TRIAL_COLUMNS).

    The objectives' names come from the study itself (a study made by `resnet-bench sweep`); the constraints
    and the hypervolume's reference point from `config` when given, else from the study file stored with it.
    """
    import pandas as pd

    storage = open_existing_storage(url)
    names = study_names(storage)
    if study_name not in names:
        held = f"the studies there: {', '.join(names)}" if names else "it holds no study"
        raise NoSuchStudyError(f"no study {study_name!r} in {safe_url(url)}; {held} (choose one with --study-name)")
    study_id = storage.get_study_id_from_name(study_name)
    attrs = storage.get_study_user_attrs(study_id)
    check_schema(attrs, study_name)
    directions = storage.get_study_directions(study_id)
    try:
        metrics = [metric for metric, _ in attrs[FINGERPRINT_PARTS]["objectives"]]
    except (KeyError, TypeError, ValueError):
        raise BadInputError(f"study {study_name!r} in {safe_url(url)} was not made by `resnet-bench sweep`: it does "
                            "not name its objectives") from None
    if config is None:
        config = stored_config(attrs.get(STUDY_FILE, ""))
    objectives = tuple((m, "maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize")
                       for m, d in zip(metrics, directions, strict=True))
    stored = storage.get_all_trials(study_id, deepcopy=False)
    rows = [_row(t) for t in stored]
    frame = pd.DataFrame.from_records(rows, columns=list(TRIAL_COLUMNS))
    frame = frame.astype(trial_column_dtypes())
    frame = frame.sort_values("number", ignore_index=True)
    datasets = frame["dataset"].dropna()
    return StudyTrials(
        name=study_name, storage=url, objectives=objectives,
        dataset=config.dataset if config is not None else (datasets.iloc[0] if len(datasets) else ""),
        constraints=dict(config.constraints) if config is not None else {},
        reference_point=dict(config.reference_point) if config is not None else {},
        baseline_recipe=describe_recipe(config.recipe_name, config.base_recipe()) if config is not None else "",
        trials=frame,
        confirm_runs=stored_runs(attrs),
        val_correct={t.number: t.user_attrs["val_correct"] for t in stored if t.user_attrs.get("val_correct")},
        histories=_full_histories(stored), **_rungs(config, stored),
    )


def _full_histories(stored: list[optuna.trial.FrozenTrial]) -> dict[int, list[dict[str, Any]]]:
    """The per-epoch histories of the trials trained to their recipe's epochs."""
    out = {}
    for t in stored:
        record = TrialRecord.from_attrs(t.user_attrs)
        if record.status == TRAINED and record.history and len(record.history) == (record.recipe or {}).get("epochs"):
            out[t.number] = record.history
    return out


def _rungs(config: StudyConfig | None, stored: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    """The study's rungs and rung estimate: from its study file, else from what its trials stored at rungs."""
    if config is not None:
        return {"rungs": rung_epochs(config.min_epochs, config.reduction_factor, config.base_recipe().epochs),
                "rung_estimate": config.rung_estimate}
    epochs = sorted({int(e) for t in stored for e in (t.user_attrs.get("rungs") or {})})
    estimates = [t.user_attrs["rung_estimate"] for t in stored if t.user_attrs.get("rung_estimate")]
    return {"rungs": tuple(epochs), "rung_estimate": estimates[-1] if estimates else "val_accuracy"}


def stored_config(source: str) -> StudyConfig | None:
    """The study file kept with a study, parsed; None when it is missing or no longer parses."""
    try:
        return parse_study(tomllib.loads(source), source=source) if source else None
    except (tomllib.TOMLDecodeError, StudyFileError):
        return None


def _row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    record = TrialRecord.from_attrs(trial.user_attrs)
    status, reason = record.status, record.reason
    if not status:  # a trial without a finished record
        if trial.state == _STATE.RUNNING:
            status = RUNNING
        elif trial.state == _STATE.WAITING:
            status = WAITING
        else:
            status = FAILED
            reason = reason or ("its worker stopped sending heartbeats (killed or lost); retried as another trial"
                                if trial.state == _STATE.FAIL else f"ended {trial.state.name.lower()} without a record")
    row: dict[str, Any] = {
        **{k: v for k, v in vars(record).items() if k in TRIAL_COLUMNS},
        "number": trial.number, "state": trial.state.name.lower(), "status": status, "reason": reason,
        "is_baseline": bool(record.baseline),
        "recipe_epochs": (record.recipe or {}).get("epochs"),
        "precision": record.trained_precision() or None,  # a trial of an earlier release: what it trained in
        "started": trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
        "completed": trial.datetime_complete.isoformat(timespec="seconds") if trial.datetime_complete else None,
    }
    if record.spec:
        try:
            spec = ResNetSpec.parse(record.spec)
        except SpecError:
            spec = None
        if spec is not None:
            row.update(spec_cells(spec))
    return row
