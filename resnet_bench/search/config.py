"""The study file (`studies/*.toml`): its schema, validated with errors that name the key path.

A value in `space` or `recipe` is a fixed value (`stem = "cifar"`), a choice (`block = ["basic",
"bottleneck"]`) or a range (`blocks = { low = 1, high = 4 }`, with `step` or `log = true`): search/domains.py
reads each. This module is plain Python: Optuna is only imported where trials are sampled.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from resnet_bench import presets
from resnet_bench.dataset_names import DATASETS, is_dataset_name
from resnet_bench.errors import BadInputError, check_positive_int, is_number
from resnet_bench.estimates import DEFAULT_RUNG_ESTIMATE, EstimateError, check_estimate
from resnet_bench.fields import FIRST_SPACE_KEYS, SPACE
from resnet_bench.recipe import RECIPE_FIELDS, RECIPES, Recipe, RecipeError, RecipeField, get_recipe
from resnet_bench.search.domains import (
    Choice,
    Domain,
    Fixed,
    StudyFileError,
    domain_json,
    extreme,
    known_keys,
    parse_domain,
)
from resnet_bench.search.early_stopping import DEFAULT_PROMOTION_RULE, PROMOTION_RULES, most_brackets

SAMPLERS = ("tpe", "nsga2", "random")
DEFAULT_SAMPLER = "tpe"  # measured against nsga2 and random: see README, "Choosing the sampler"
# Objective metrics and their natural direction. test_accuracy is deliberately absent: it is never used for selection.
OBJECTIVES = {
    "val_accuracy": "maximize", "gflops": "minimize", "params": "minimize", "activations": "minimize",
    "latency_ms": "minimize", "train_seconds": "minimize",
}
CONSTRAINTS = {"max_gflops": "gflops", "max_params": "params", "max_activations": "activations",
               "max_latency_ms": "latency_ms"}
# A study's name is its folder's name under --out: one path component, so that nothing is written outside --out.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
STUDY_NAME_RULE = "letters, digits, '_', '-' and '.', starting with a letter or digit (one folder name)"


def is_study_name(name: object) -> bool:
    """Whether `name` may name a study (the file's `name`, --study-name): one safe folder name."""
    return isinstance(name, str) and STUDY_NAME.fullmatch(name) is not None


SHIPPED_STUDIES = ("quickstart", "quickstart_mo_asha", "quickstart_modern", "fashion_mnist", "fashion_mnist_cpu",
                   "cifar10")
EARLY_STOPPING = ("off", "mo-asha")  # mo-asha: see search/early_stopping.py


# The [space] keys, in the order messages list them; fields.SPACE gives each its kind, check, accepted values and
# default, from the field table.
SPACE_KEYS = tuple(SPACE)

# recipe key -> its kind, check and accepted text: the recipe's rows (recipe.py) that a study file may give
_RECIPE: dict[str, RecipeField] = {f.name: f for f in RECIPE_FIELDS if f.accepted}
RECIPE_KEYS = tuple(_RECIPE)


@dataclass(frozen=True)
class Objective:
    """A metric to optimise and its direction."""

    metric: str  # a key of OBJECTIVES
    direction: str  # maximize or minimize


@dataclass(frozen=True)
class StudyConfig:
    """A validated study file."""

    name: str  # the study's name in the storage
    dataset: str  # a data set name (see resnet_bench.data.DATASETS)
    seed: int  # seeds the sampler, the validation split, the weights and the training
    objectives: tuple[Objective, ...]
    space: dict[str, Domain]  # every key of SPACE_KEYS
    constraints: dict[str, float]  # max_gflops, max_params, max_activations, max_latency_ms
    recipe_name: str  # a named recipe
    recipe: dict[str, Domain]  # overrides of the named recipe
    n_trials: int  # trials a sweep trains, to the end or stopped early (infeasible candidates do not count)
    timeout_minutes: float | None  # wall-clock limit of one sweep command
    sampler: str  # tpe, nsga2 or random
    sampler_options: dict[str, int] = field(default_factory=dict)  # n_startup_trials (tpe), population_size (nsga2)
    baselines: tuple[str, ...] = ()  # models trained with the same recipe: preset names or one-line specs
    val_size: int = 2000  # validation images carved from the training set
    image_size: int = 32  # imagefolder data sets only: decoded size
    # [report] reference_point: objective metric -> the value the hypervolume is measured from (see report/)
    reference_point: dict[str, float] = field(default_factory=dict)
    source: str = ""  # the file's text, kept with the study
    # [budget] early stopping: off, or mo-asha with rungs at min_epochs * reduction_factor**k epochs
    early_stopping: str = "off"
    min_epochs: int = 1  # the first rung, epochs
    reduction_factor: int = 3  # eta: the top 1/eta of the trials at a rung go on
    rung_estimate: str = DEFAULT_RUNG_ESTIMATE  # what a trial reports at a rung for its accuracy (estimates.py)
    promotion: str = DEFAULT_PROMOTION_RULE  # how many of a rung go on (search/early_stopping.PROMOTION_RULES)
    brackets: int = 1  # asynchronous Hyperband's brackets (search/early_stopping.MOASHA); 1: plain MO-ASHA
    # What a trained trial keeps beyond its final metrics (changes no measurement): the test error after every epoch
    # in its history (learning curves; never read for selection), and its weights as a checkpoint file.
    curves: bool = False
    checkpoints: bool = False
    # Every rung estimate measured after every epoch and kept in each trial's history (the recorded benchmark,
    # benchmarks/bench_space.py); changes no measurement of the trial itself.
    record_estimates: bool = False

    @property
    def needs_latency(self) -> bool:
        """A latency objective or bound: every candidate's batch-1 latency is measured, alone on its device."""
        return "max_latency_ms" in self.constraints or any(o.metric == "latency_ms" for o in self.objectives)

    def base_recipe(self) -> Recipe:
        """The recipe every baseline trains with: the named recipe, its fixed overrides and the study's seed.

        A field the study searches (a choice or a range) keeps the named recipe's value, so that all baselines
        share one recipe, whatever the sampler proposes to the candidates.
        """
        fixed = {k: d.value for k, d in self.recipe.items() if isinstance(d, Fixed)}
        return get_recipe(self.recipe_name, seed=self.seed, **fixed)

    def fingerprint_parts(self) -> dict[str, Any]:
        """Everything that changes how a trial is measured; a resumed study must share all of it.

        The recipe is every field of the named recipe with the study's overrides (a fixed value, a choice or a
        range), as the baselines train with it (a warm-up scaled to fixed epochs included), so that a named recipe
        that changes between releases is a change too.
        """
        named = self.base_recipe().to_dict()
        return {
            # A key added after studies were stored stays out while fixed at its default (the networks of before),
            # so that a study stored before it existed resumes.
            "space": {k: domain_json(v) for k, v in sorted(self.space.items())
                      if k in FIRST_SPACE_KEYS or v != Fixed(SPACE[k].default)},
            "objectives": [[o.metric, o.direction] for o in self.objectives],
            "dataset": self.dataset,
            "recipe": {"name": self.recipe_name,
                       **{k: domain_json(self.recipe[k]) if k in self.recipe else named[k]
                          for k in named if k != "seed"}},  # the study's seed is the recipe's
            "seed": self.seed,
            "val_size": self.val_size,
            "image_size": self.image_size,
        }

    def fingerprint(self) -> str:
        """A short hash of fingerprint_parts."""
        text = json.dumps(self.fingerprint_parts(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def settings(self) -> dict[str, Any]:
        """What may change when a study resumes, since it changes no measurement; the study keeps its history."""
        return {
            "n_trials": self.n_trials, "timeout_minutes": self.timeout_minutes, "constraints": self.constraints,
            "reference_point": self.reference_point, "sampler": self.sampler, "sampler_options": self.sampler_options,
            "baselines": list(self.baselines), "early_stopping": self.early_stopping, "min_epochs": self.min_epochs,
            "reduction_factor": self.reduction_factor, "curves": self.curves, "checkpoints": self.checkpoints,
            "rung_estimate": self.rung_estimate, "promotion": self.promotion, "record_estimates": self.record_estimates,
            **({"brackets": self.brackets} if self.brackets != 1 else {}),  # a study of one bracket reads as before
        }


def changed_fields(before: dict[str, Any], now: dict[str, Any], path: str = "") -> list[str]:
    """`key: before -> now` for every leaf that differs between two nested dicts, keys joined by dots."""
    changes = []
    for key in sorted(set(before) | set(now), key=str):
        old, new = before.get(key, "(none)"), now.get(key, "(none)")
        if isinstance(old, dict) and isinstance(new, dict):
            changes += changed_fields(old, new, f"{path}{key}.")
        elif old != new:
            changes.append(f"{path}{key}: {_show(old)} -> {_show(new)}")
    return changes


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def shipped_study(name: str) -> str:
    """The text of a study file that ships in the package."""
    return resources.files("resnet_bench").joinpath(f"studies/{name}.toml").read_text(encoding="utf-8")


def load_study_file(path: str | Path | None) -> StudyConfig:
    """Read and validate a study file; None or a shipped name (quickstart, ...) reads the packaged one."""
    if path is None or str(path) in SHIPPED_STUDIES:
        text, where = shipped_study(str(path or "quickstart")), f"{path or 'quickstart'} (shipped)"
    else:
        p = Path(path)
        if not p.is_file():
            shipped = ", ".join(SHIPPED_STUDIES)
            raise StudyFileError(f"study file {str(p)!r} does not exist; give a .toml path or one of: {shipped}")
        try:
            text, where = p.read_text(encoding="utf-8"), str(p)
        except UnicodeDecodeError as exc:
            raise StudyFileError(f"study file {str(p)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 "
                                 "TOML") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{where}: not valid TOML: {exc}") from None
    try:
        return parse_study(data, source=text)
    except StudyFileError as exc:
        raise StudyFileError(f"{where}: {exc}") from None


_TOP = ("name", "description", "dataset", "seed", "val_size", "image_size", "objectives", "space", "constraints",
        "recipe", "budget", "sampler", "baselines", "report", "curves", "checkpoints", "record_estimates")


def parse_study(data: dict[str, Any], *, source: str = "") -> StudyConfig:
    """Validate a parsed study file, one table at a time."""
    known_keys(data, _TOP, "")
    objectives = _objectives(data.get("objectives"))
    recipe_name, recipe = _recipe(_table(data, "recipe"))
    budget = _table(data, "budget")
    n_trials, timeout = _budget(budget)
    sampler, options = _sampler(_table(data, "sampler"))
    return StudyConfig(
        **_top_level(data), objectives=objectives, space=_space(_table(data, "space")),
        constraints=_constraints(_table(data, "constraints")), recipe_name=recipe_name, recipe=recipe,
        n_trials=n_trials, timeout_minutes=timeout, **_early_stopping(budget, recipe_name, recipe),
        sampler=sampler, sampler_options=options,
        baselines=_baselines(data.get("baselines", [])),
        reference_point=_reference_point(_table(data, "report"), objectives), source=source,
    )


def _top_level(data: dict[str, Any]) -> dict[str, Any]:
    """name, dataset, seed, val_size, image_size, curves, checkpoints (description is only read)."""
    name = _get(data, "name", str, f"a name of {STUDY_NAME_RULE}")
    if not is_study_name(name):
        raise StudyFileError(f"name={name!r} is not accepted; use {STUDY_NAME_RULE}")
    dataset = _get(data, "dataset", str, f"one of {', '.join(DATASETS)}")
    if not is_dataset_name(dataset):
        raise StudyFileError(f"dataset={dataset!r} is not accepted; use one of {', '.join(DATASETS)}")
    _get(data, "description", str, "text", default="")
    return {
        "name": name, "dataset": dataset, "seed": _get(data, "seed", int, "an integer", default=0),
        "val_size": _positive(data, "val_size", 2000), "image_size": _positive(data, "image_size", 32),
        "curves": _get(data, "curves", bool, "true or false", default=False),
        "checkpoints": _get(data, "checkpoints", bool, "true or false", default=False),
        "record_estimates": _get(data, "record_estimates", bool, "true or false", default=False),
    }


def _space(table: dict[str, Any]) -> dict[str, Domain]:
    """[space]: every key of SPACE_KEYS, each fixed, a choice or a range; missing keys take their defaults."""
    known_keys(table, SPACE_KEYS, "space.")
    return {k: parse_domain(table, k, "space.", key, key.default) for k, key in SPACE.items()}


def _constraints(table: dict[str, Any]) -> dict[str, float]:
    """[constraints]: upper bounds on cost, each a number > 0."""
    known_keys(table, tuple(CONSTRAINTS), "constraints.")
    for key, value in table.items():
        if not is_number(value) or value <= 0:
            raise StudyFileError(f"constraints.{key}={value!r} is not accepted; it must be a number > 0")
    return {key: float(value) for key, value in table.items()}


def _recipe(table: dict[str, Any]) -> tuple[str, dict[str, Domain]]:
    """[recipe]: a named recipe and overrides of its fields, each fixed, a choice or a range."""
    known_keys(table, ("name", *_RECIPE), "recipe.")
    name = _get(table, "name", str, f"one of {', '.join(RECIPES)}", default="fast", path="recipe.")
    if name not in RECIPES:
        raise StudyFileError(f"recipe.name={name!r} is not accepted; use one of {', '.join(RECIPES)}")
    domains = {k: parse_domain(table, k, "recipe.", f, None) for k, f in _RECIPE.items() if k in table}
    # The recipe must fit at the extremes of what the file allows: the fewest epochs with the longest warm-up.
    extremes = {k: extreme(d, low=k == "epochs") for k, d in domains.items() if k in ("epochs", "warmup_epochs")}
    fixed = {k: d.value for k, d in domains.items() if isinstance(d, Fixed)}
    try:
        get_recipe(name, **{**fixed, **extremes})
    except RecipeError as exc:
        raise StudyFileError(f"[recipe]: {exc}") from None
    return name, domains


def _budget(table: dict[str, Any]) -> tuple[int, float | None]:
    """[budget]: trained trials one sweep command adds, and its optional wall-clock limit."""
    known_keys(table, ("n_trials", "timeout_minutes", "early_stopping", "min_epochs", "reduction_factor",
                   "rung_estimate", "promotion", "brackets"), "budget.")
    n_trials = _positive(table, "n_trials", 20, path="budget.")
    timeout = table.get("timeout_minutes")
    if timeout is not None and (not is_number(timeout) or timeout <= 0):
        raise StudyFileError(f"budget.timeout_minutes={timeout!r} is not accepted; it must be a number > 0")
    return n_trials, float(timeout) if timeout is not None else None


def _early_stopping(table: dict[str, Any], recipe_name: str, recipe: dict[str, Domain]) -> dict[str, Any]:
    """[budget] early_stopping, min_epochs, reduction_factor: the first rung must come before the last epoch."""
    mode = _get(table, "early_stopping", str, f"one of {', '.join(EARLY_STOPPING)}", default="off", path="budget.")
    if mode not in EARLY_STOPPING:
        raise StudyFileError(f"budget.early_stopping={mode!r} is not accepted; use one of {', '.join(EARLY_STOPPING)}")
    min_epochs = _positive(table, "min_epochs", 1, path="budget.")
    eta = _get(table, "reduction_factor", int, "an integer >= 2", default=3, path="budget.")
    if eta < 2:
        raise StudyFileError(f"budget.reduction_factor={eta} is not accepted; it must be an integer >= 2")
    if mode != "off":
        epochs = recipe.get("epochs", Fixed(RECIPES[recipe_name].epochs))
        fewest = epochs.value if isinstance(epochs, Fixed) else min(epochs.values) if isinstance(
            epochs, Choice) else int(epochs.low)
        if min_epochs >= fewest:
            raise StudyFileError(f"budget.min_epochs={min_epochs} is not accepted with early_stopping={mode!r}: the "
                                 f"first rung must come before the recipe's last epoch ({fewest}); use fewer")
    brackets = _get(table, "brackets", int, "an integer >= 1", default=1, path="budget.")
    most = most_brackets(min_epochs, eta, fewest) if mode != "off" else 1
    if not 1 <= brackets <= most:
        raise StudyFileError(f"budget.brackets={brackets} is not accepted; it must be an integer from 1 to {most} "
                             f"(1: no brackets; more need early_stopping = \"mo-asha\" and a rung each)")
    estimate = table.get("rung_estimate", DEFAULT_RUNG_ESTIMATE)
    try:
        check_estimate(estimate)
    except EstimateError as exc:
        raise StudyFileError(f"budget.{exc}") from None
    promotion = table.get("promotion", DEFAULT_PROMOTION_RULE)
    if promotion not in PROMOTION_RULES:
        raise StudyFileError(f"budget.promotion={promotion!r} is not accepted; use one of {', '.join(PROMOTION_RULES)}")
    return {"early_stopping": mode, "min_epochs": min_epochs, "reduction_factor": eta, "rung_estimate": estimate,
            "promotion": promotion, "brackets": brackets}


def _sampler(table: dict[str, Any]) -> tuple[str, dict[str, int]]:
    """[sampler]: its name and options."""
    known_keys(table, ("name", "n_startup_trials", "population_size"), "sampler.")
    sampler = _get(table, "name", str, f"one of {', '.join(SAMPLERS)}", default=DEFAULT_SAMPLER, path="sampler.")
    if sampler not in SAMPLERS:
        raise StudyFileError(f"sampler.name={sampler!r} is not accepted; use one of {', '.join(SAMPLERS)}")
    options = {}
    for key, low in (("n_startup_trials", 0), ("population_size", 2)):
        if key in table:
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise StudyFileError(f"sampler.{key}={value!r} is not accepted; it must be an integer >= {low}")
            options[key] = value
    return sampler, options


def _baselines(baselines: Any) -> tuple[str, ...]:
    """baselines = [models]: preset names, one-line specs, or presets with fields replaced (resnet20,stem_width=8)."""
    if not isinstance(baselines, list) or not all(isinstance(b, str) for b in baselines):
        raise StudyFileError(f"baselines={baselines!r} is not accepted; it must be a list of models: preset names, "
                             "one-line specs, or presets with fields replaced (resnet20,stem_width=8)")
    for i, b in enumerate(baselines):
        try:
            presets.resolve(b) if "=" in b else presets.get(b)  # never a JSON file: a study file stands alone
        except BadInputError as exc:
            raise StudyFileError(f"baselines[{i}]: {exc}") from None
    return tuple(baselines)


def _reference_point(report: dict[str, Any], objectives: tuple[Objective, ...]) -> dict[str, float]:
    """[report] reference_point = { metric = value, ... }: one number for some or all of the objectives."""
    known_keys(report, ("reference_point",), "report.")
    point = report.get("reference_point", {})
    if not isinstance(point, dict):
        raise StudyFileError(f"report.reference_point={point!r} is not accepted; it must be a table "
                             "{ metric = value } over the objectives")
    metrics = tuple(o.metric for o in objectives)
    known_keys(point, metrics, "report.reference_point.")
    for key, value in point.items():
        if not is_number(value) or not math.isfinite(value):
            raise StudyFileError(f"report.reference_point.{key}={value!r} is not accepted; it must be a finite number")
    return {k: float(v) for k, v in point.items()}


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise StudyFileError(f"{key} must be a table ([{key}]), got {type(value).__name__}")
    return value


def _positive(data: dict[str, Any], key: str, default: int, *, path: str = "") -> int:
    return check_positive_int(f"{path}{key}", data.get(key, default), error=StudyFileError)


def _get(data: dict[str, Any], key: str, kind: type, accepted: str, *, default: Any = ..., path: str = "") -> Any:
    if key not in data:
        if default is ...:
            raise StudyFileError(f"{path}{key} is missing; it must be {accepted}")
        return default
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise StudyFileError(f"{path}{key}={value!r} is not accepted; it must be {accepted}")
    return value


def _objectives(value: Any) -> tuple[Objective, ...]:
    accepted = ", ".join(OBJECTIVES)
    if not isinstance(value, list) or not value:
        raise StudyFileError(
            "objectives must be a non-empty list of tables, e.g. [[objectives]] metric = \"val_accuracy\""
        )
    out = []
    for i, entry in enumerate(value):
        path = f"objectives[{i}]"
        if not isinstance(entry, dict):
            raise StudyFileError(f"{path} must be a table with metric and direction")
        known_keys(entry, ("metric", "direction"), f"{path}.")
        metric = entry.get("metric")
        if metric == "test_accuracy":
            raise StudyFileError(f"{path}.metric='test_accuracy' is not accepted: the test set is never used for "
                                 "selection; use val_accuracy")
        if metric not in OBJECTIVES:
            raise StudyFileError(f"{path}.metric={metric!r} is not an objective; use one of {accepted}")
        direction = entry.get("direction", OBJECTIVES[metric])
        if direction not in ("maximize", "minimize"):
            raise StudyFileError(f"{path}.direction={direction!r} is not accepted; use maximize or minimize")
        if any(o.metric == metric for o in out):
            raise StudyFileError(f"{path}.metric={metric!r} is given twice")
        out.append(Objective(metric, direction))
    return tuple(out)


def constraint_values(config: StudyConfig, cost: dict[str, float | None]) -> dict[str, float]:
    """Optuna's constraint values, <= 0 where satisfied, for the bounds whose metric was measured."""
    return {key: float(cost[metric]) - bound for key, bound in config.constraints.items()
            if cost.get(metric := CONSTRAINTS[key]) is not None}
