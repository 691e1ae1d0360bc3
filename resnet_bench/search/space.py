"""From a study's space to Optuna's suggestions, and from the suggestions to a ResNetSpec and a Recipe."""

from __future__ import annotations

import math
from typing import Any

import optuna

from resnet_bench.recipe import Recipe, get_recipe
from resnet_bench.search.config import Choice, Domain, Fixed, StudyConfig
from resnet_bench.spec import ResNetSpec

BOTTLENECK_ONLY = ("groups", "width_per_group", "stride_on")


def suggest(trial: optuna.Trial, name: str, domain: Domain) -> Any:
    """The value of one parameter: fixed values are not parameters; choices and ranges are."""
    if isinstance(domain, Fixed):
        return domain.value
    if isinstance(domain, Choice):
        return trial.suggest_categorical(name, list(domain.values))
    if domain.is_int:
        return trial.suggest_int(name, domain.low, domain.high, step=int(domain.step or 1), log=domain.log)
    return trial.suggest_float(name, domain.low, domain.high, step=domain.step, log=domain.log)


def sample_spec(trial: optuna.Trial, config: StudyConfig) -> ResNetSpec:
    """A network of the study's space; raises SpecError for a combination the generator refuses."""
    space = config.space
    value = {k: suggest(trial, k, d) for k, d in space.items() if k not in (*BOTTLENECK_ONLY, "blocks",
                                                                            "zero_init_residual")}
    stages = value["stages"]
    layers = tuple(suggest(trial, f"blocks_{i + 1}", space["blocks"]) for i in range(stages))
    base = value["base_width"] or value["stem_width"]
    widths = tuple(max(1, round(base * 2**i * value["width_multiplier"])) for i in range(stages))
    kwargs: dict[str, Any] = dict(
        block=value["block"], layers=layers, widths=widths, stem=value["stem"], stem_width=value["stem_width"],
        shortcut=value["shortcut"], dropout=float(value["dropout"]),
    )
    if value["block"] in ("bottleneck", "preact_bottleneck"):
        kwargs.update({k: suggest(trial, k, space[k]) for k in BOTTLENECK_ONLY})
    if not value["block"].startswith("preact") and value["shortcut"] != "none":
        kwargs["zero_init_residual"] = suggest(trial, "zero_init_residual", space["zero_init_residual"])
    return ResNetSpec(**kwargs)


def sample_recipe(trial: optuna.Trial, config: StudyConfig) -> Recipe:
    """The named recipe with the study's overrides, sampled where they are choices or ranges."""
    overrides = {k: suggest(trial, f"recipe.{k}", d) for k, d in config.recipe.items()}
    return get_recipe(config.recipe_name, seed=config.seed, **overrides)


def _cardinality(domain: Domain) -> float:
    if isinstance(domain, Fixed):
        return 1
    if isinstance(domain, Choice):
        return len(domain.values)
    if domain.is_int:
        return (domain.high - domain.low) // int(domain.step or 1) + 1
    return math.inf if domain.step is None else math.floor((domain.high - domain.low) / domain.step) + 1


def _values(domain: Domain) -> list[Any]:
    if isinstance(domain, Fixed):
        return [domain.value]
    if isinstance(domain, Choice):
        return list(domain.values)
    return list(range(domain.low, domain.high + 1, int(domain.step or 1)))


def space_size(config: StudyConfig) -> float:
    """Distinct candidates (network and recipe) in the space; math.inf when a float range is continuous."""
    return architecture_count(config) * recipe_count(config)


def recipe_count(config: StudyConfig) -> float:
    """Distinct recipes the study's [recipe] allows; math.inf when a float range is continuous."""
    return math.prod(_cardinality(d) for d in config.recipe.values())


def architecture_count(config: StudyConfig) -> float:
    """Distinct networks the study's [space] allows; math.inf when a float range (dropout) is continuous."""
    space = config.space
    per_block = 0.0
    for block in _values(space["block"]):
        bottleneck = math.prod(_cardinality(space[k]) for k in BOTTLENECK_ONLY) if "bottleneck" in block else 1
        for shortcut in _values(space["shortcut"]):
            zero_init = _cardinality(space["zero_init_residual"]) if (
                not block.startswith("preact") and shortcut != "none") else 1
            per_block += bottleneck * zero_init
    depth = sum(_cardinality(space["blocks"]) ** s for s in _values(space["stages"]))
    others = math.prod(_cardinality(space[k]) for k in ("stem", "stem_width", "base_width", "width_multiplier",
                                                           "dropout"))
    return per_block * depth * others
