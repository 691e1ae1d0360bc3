"""A study in its storage: made once, resumed only with what it was measured under, with its sampler.

The study keeps a fingerprint of everything that changes how a trial is measured (space, objectives,
data set, recipe, seed, validation split, image size): a study file that changes any of it is refused
on resume, field by field, so that no front mixes trials measured differently. What changes no
measurement (the budget, the constraints, the reference point, the sampler, the baselines) may change
on resume; the study keeps a history of it.
"""

from __future__ import annotations

import datetime
import json
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from resnet_bench.errors import BadInputError
from resnet_bench.presets import resolve as resolve_model
from resnet_bench.search.config import StudyConfig, changed_fields, parse_study
from resnet_bench.search.domains import StudyFileError
from resnet_bench.search.early_stopping import BRACKET_ATTR
from resnet_bench.search.records import TrialRecord, retried_by_the_next_command
from resnet_bench.search.space import BASELINE_PARAMS, baseline_params
from resnet_bench.search.states import STATE_ARTIFACT
from resnet_bench.search.storage import (
    DEFAULT_HEARTBEAT_SECONDS,
    FINGERPRINT,
    FINGERPRINT_PARTS,
    PRECISION,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    SETTINGS_HISTORY,
    STUDY_FILE,
    check_schema,
    open_storage,
    schema_version,
)


class StudyMismatchError(BadInputError):
    """A study file that measures trials differently from the stored study it would resume."""


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
    """Create the study, or load it to resume; refuse a study file that would measure trials differently.

    The baselines are enqueued once, when the study is made or first meets them.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or config.name
    study = optuna.create_study(
        storage=open_storage(storage, heartbeat_seconds), study_name=name, load_if_exists=True,
        directions=[o.direction for o in config.objectives], sampler=make_sampler(config, worker),
    )
    now = _as_stored(config.fingerprint_parts())
    if study.user_attrs.get(FINGERPRINT) is None:
        study.set_user_attr(FINGERPRINT, config.fingerprint())
        study.set_user_attr(FINGERPRINT_PARTS, now)
    else:
        check_schema(study.user_attrs, name)
        check_same_conditions(config, stored_conditions(study.user_attrs, name), name)
        if study.user_attrs.get(FINGERPRINT_PARTS) != now:  # made by an earlier release: upgraded once
            study.set_user_attr(FINGERPRINT, config.fingerprint())
            study.set_user_attr(FINGERPRINT_PARTS, now)
    if schema_version(study.user_attrs) < SCHEMA_VERSION:  # none stored reads as 1
        study.set_user_attr(SCHEMA_VERSION_KEY, SCHEMA_VERSION)  # made now, or upgraded above
    _record_settings(study, config)
    if study.metric_names is None:  # optuna-dashboard shows these instead of "Objective 0/1"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.metric for o in config.objectives])
    study.set_user_attr(STUDY_FILE, config.source)  # the latest file; its settings' history is kept apart
    _queue_baselines(study, config)
    _queue_retries(study)
    return study


def _queue_baselines(study: optuna.Study, config: StudyConfig) -> None:
    """Queue each baseline the study has not got: never queued, or only failed (a crash, Ctrl-C, a full disk).
    A failed one is queued again once per command, like a heartbeat's retry, with its last training state, so that
    it resumes from its last epoch; one waiting, running or ended otherwise is left alone."""
    trials = study.get_trials(deepcopy=False)
    alive = {t.user_attrs.get("baseline") for t in trials if t.state != optuna.trial.TrialState.FAIL}
    failed = {t.user_attrs.get("baseline"): t for t in trials if t.state == optuna.trial.TrialState.FAIL}
    for baseline in config.baselines:
        if baseline in alive:
            continue
        params = baseline_params(resolve_model(baseline), config)
        attrs = {"baseline": baseline, BASELINE_PARAMS: sorted(params)}
        if baseline in failed:
            attrs.update(_kept_state(failed[baseline]))
        study.enqueue_trial(params, user_attrs=attrs)


def _kept_state(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """What a failed trial's retry resumes from: its state file where this machine has it, its shared state."""
    attrs = {}
    state = trial.user_attrs.get("state_file")
    if state and Path(state).exists():
        attrs["state_file"] = state
    if trial.user_attrs.get(STATE_ARTIFACT):
        attrs[STATE_ARTIFACT] = trial.user_attrs[STATE_ARTIFACT]
    if BRACKET_ATTR in trial.user_attrs:  # judged at the same rungs as before (early_stopping.MOASHA)
        attrs[BRACKET_ATTR] = trial.user_attrs[BRACKET_ATTR]
    return attrs


RETRY_OF = "retry_of"  # a queued retry's user attribute: the number of the trial it retries


def _queue_retries(study: optuna.Study) -> None:
    """Queue again, once per command, each searched trial that Ctrl-C or a full disk ended and that no trial retries
    yet: the same network and recipe (its parameters), resuming from its last training state."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    for t in trials:
        if t.state == optuna.trial.TrialState.FAIL and not t.user_attrs.get("baseline") and t.number not in retried \
                and retried_by_the_next_command(t.user_attrs.get("reason")):
            study.enqueue_trial(t.params, user_attrs={RETRY_OF: t.number, **_kept_state(t)})


def study_precision(study: optuna.Study, resolve: Callable[[], str]) -> str:
    """bf16 or fp32: what a study whose recipe says `precision = "auto"` trains in, on every worker and machine.

    `auto` depends on the machine (bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere), and accuracies
    trained in different precisions are not alike; so the study resolves it once, with `resolve` (the first
    worker's device), stores it, and every later worker trains in it whatever its own machine would choose. A study
    of an earlier release keeps what its trained trials trained in.
    """
    stored = study.user_attrs.get(PRECISION)
    if stored in ("bf16", "fp32"):
        return stored

    earlier = [record.trained_precision() for record in (TrialRecord.from_attrs(t.user_attrs)
               for t in study.get_trials(deepcopy=False)) if (record.recipe or {}).get("precision") == "auto"]
    chosen = next((p for p in earlier if p), None) or resolve()  # the first trained trial's, else this machine's
    study.set_user_attr(PRECISION, chosen)
    return chosen


def check_same_conditions(config: StudyConfig, stored_parts: dict[str, Any], name: str) -> None:
    """Refuse a study file that measures trials otherwise than the stored study `name`, naming each change."""
    now = _as_stored(config.fingerprint_parts())
    if stored_parts != now:
        raise StudyMismatchError(
            f"study {name!r} was measured under other conditions; this study file changes "
            + "; ".join(changed_fields(stored_parts, now))
            + ". To keep both, give this one another name (--study-name, or name in the file)")


def _as_stored(value: Any) -> Any:
    """A value as the storage gives it back (JSON: tuples become lists)."""
    return json.loads(json.dumps(value))


def stored_conditions(attrs: dict[str, Any], name: str) -> dict[str, Any]:
    """What the stored study `name` (its user attributes) was measured under: its fingerprint parts by today's rule.

    A study made by an earlier release stored fewer parts (space, objectives, data set); its stored study
    file, parsed now, gives all of them.
    """
    stored = attrs.get(FINGERPRINT_PARTS, {})
    if schema_version(attrs) >= 2 or set(stored) >= {"recipe", "seed", "val_size", "image_size"}:
        return stored
    try:
        source = attrs.get(STUDY_FILE, "")
        return _as_stored(parse_study(tomllib.loads(source), source=source).fingerprint_parts())
    except (tomllib.TOMLDecodeError, StudyFileError) as exc:
        raise StudyMismatchError(
            f"study {name!r} was made by an earlier release and its stored study file no longer reads ({exc}); "
            "its trials' conditions cannot be checked, so it is not resumed: give this study another name"
        ) from None


def _record_settings(study: optuna.Study, config: StudyConfig) -> None:
    """Append the study file's settings to the study's history when they differ from the last ones recorded."""
    history = list(study.user_attrs.get(SETTINGS_HISTORY, []))
    settings = _as_stored(config.settings())
    if history and {k: v for k, v in history[-1].items() if k != "at"} == settings:
        return
    at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    study.set_user_attr(SETTINGS_HISTORY, [*history, {"at": at, **settings}])
