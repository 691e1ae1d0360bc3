"""From a study's space to Optuna's suggestions, and from the suggestions to a ResNetSpec and a Recipe."""

from __future__ import annotations

import math
from typing import Any

import optuna

from resnet_bench.errors import BadInputError
from resnet_bench.fields import BLOCKS, SHORTCUTS, SPEC_FIELDS, Field
from resnet_bench.recipe import Recipe, get_recipe
from resnet_bench.search.config import StudyConfig
from resnet_bench.search.domains import Choice, Domain, Fixed, Range
from resnet_bench.spec import ResNetSpec, SpecError

_SEARCHED = {f.name: f for f in SPEC_FIELDS if f.searched}  # the fields that are keys of a study's [space]


def _restricted(f: Field) -> tuple[bool, bool]:
    """Whether only some blocks, and whether only some shortcuts, take the field."""
    return f.blocks != BLOCKS, f.shortcuts != SHORTCUTS


# The searched fields that only some networks take (the spec refuses them elsewhere), sampled only where the network
# takes them: those only some shortcuts take, then those only some blocks take, then those of both (the order of the
# earlier releases' samples, so that a seeded study samples the same networks).
CONDITIONAL_KEYS = tuple(f.name for f in sorted(_SEARCHED.values(), key=_restricted) if any(_restricted(f)))


def stage_widths(base: int, multiplier: float, stages: int) -> tuple[int, ...]:
    """The planes of each stage: base doubled per stage, times the multiplier, rounded (at least 1)."""
    return tuple(max(1, round(base * 2**i * multiplier)) for i in range(stages))


def _taken(block: str, shortcut: str) -> list[str]:
    """The conditional keys that a network of this block and shortcut takes, in sampling order."""
    return [k for k in CONDITIONAL_KEYS if _SEARCHED[k].takes(block, shortcut)]


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
    value = {k: suggest(trial, k, d) for k, d in space.items() if k not in (*CONDITIONAL_KEYS, "blocks")}
    stages = value["stages"]
    layers = tuple(suggest(trial, f"blocks_{i + 1}", space["blocks"]) for i in range(stages))
    widths = stage_widths(value["base_width"] or value["stem_width"], value["width_multiplier"], stages)
    kwargs = {k: v for k, v in value.items() if k in _SEARCHED}
    kwargs.update({k: suggest(trial, k, space[k]) for k in _taken(value["block"], value["shortcut"])})
    return ResNetSpec(layers=layers, widths=widths, **kwargs)


def baseline_params(spec: ResNetSpec, config: StudyConfig) -> dict[str, Any]:
    """The study's parameters that describe a baseline's network, for those the space can hold (a value outside
    a choice or a range is left out): a baseline enqueued with them is a point of the sampler's history and of
    optuna-dashboard's slice, importance and parallel-coordinate views, like any sampled trial."""
    space = config.space
    base_domain = space.get("base_width", Fixed(None))
    base = (base_domain.value if isinstance(base_domain, Fixed) else None) or spec.stem_width
    values: dict[str, Any] = {k: getattr(spec, f.attribute) for k, f in _SEARCHED.items()
                              if f.takes(spec.block, spec.shortcut)}
    values["stages"] = len(spec.layers)
    multiplier = spec.stage_widths[0] / base
    multiplier = int(multiplier) if multiplier == int(multiplier) else multiplier
    if stage_widths(base, multiplier, len(spec.layers)) == spec.stage_widths:
        values["width_multiplier"] = multiplier
    params = {name: value for name, value in values.items() if _holds(space.get(name), value)}
    params.update({f"blocks_{i + 1}": n for i, n in enumerate(spec.layers) if _holds(space.get("blocks"), n)})
    return params


BASELINE_PARAMS = "baseline_params"  # the record's field (records.py): the names of a baseline's enqueued parameters


def suggest_baseline(trial: optuna.Trial, config: StudyConfig) -> None:
    """Record a baseline trial's enqueued parameters under their distributions (each suggestion returns the
    enqueued value; a baseline enqueued by an earlier release, with none, records none)."""
    for name in trial.user_attrs.get(BASELINE_PARAMS, []):
        suggest(trial, name, config.space["blocks" if name.startswith("blocks_") else name])


def _holds(domain: Domain | None, value: Any) -> bool:
    """Whether a parameter of this domain can take the value (fixed values are not parameters)."""
    if isinstance(domain, Choice):
        return any(value == v and type(value) is type(v) for v in domain.values)
    if isinstance(domain, Range) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if domain.is_int and value != int(value):
            return False
        on_grid = domain.step is None or math.isclose((value - domain.low) / domain.step,
                                                      round((value - domain.low) / domain.step))
        return domain.low <= value <= domain.high and on_grid
    return False


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
    per_network = 0.0
    for block in _values(space["block"]):
        for shortcut in _values(space["shortcut"]):
            per_network += math.prod(_cardinality(space[k]) for k in _taken(block, shortcut))
    depth = sum(_cardinality(space["blocks"]) ** s for s in _values(space["stages"]))
    others = math.prod(_cardinality(d) for k, d in space.items()
                       if k not in ("block", "shortcut", "stages", "blocks", *CONDITIONAL_KEYS))
    return per_network * depth * others


class _PathTrial:
    """A stand-in for an Optuna trial that answers each suggestion from a path of choice indices (the first value
    past the path's end) and records how many values each suggestion had: what `grid` walks the space with."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.params, self.options = path, {}, []  # type: ignore[var-annotated]
        self.user_attrs: dict[str, Any] = {}

    def _pick(self, name: str, values: list[Any]) -> Any:
        i = len(self.options)
        self.options.append(len(values))
        self.params[name] = value = values[self.path[i] if i < len(self.path) else 0]
        return value

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._pick(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._pick(name, list(range(low, high + 1, step)))

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        if step is None:
            raise ValueError(f"{name} is a continuous range: the space has no grid")
        return self._pick(name, [low + i * step for i in range(math.floor((high - low) / step + 1e-9) + 1)])


def grid(config: StudyConfig) -> list[dict[str, Any]]:
    """The parameters of every candidate (network and recipe) of a discrete space, in a fixed order: what a study
    enqueues to train the whole space (a parameter that a network does not use is not repeated for it). A
    combination that the generator refuses is included: the sweep records it as invalid, as it would a sample."""
    points, path = [], []
    while True:
        trial = _PathTrial(path)
        try:
            sample_spec(trial, config)  # type: ignore[arg-type]
        except (SpecError, BadInputError):
            pass
        sample_recipe(trial, config)  # type: ignore[arg-type]
        points.append(dict(trial.params))
        # The next path, as an odometer over the suggestions this one made: the last that can move moves.
        movable = [i for i in range(len(trial.options)) if (path[i] if i < len(path) else 0) < trial.options[i] - 1]
        if not movable:
            return points
        i = movable[-1]
        path = [*(path[j] if j < len(path) else 0 for j in range(i)), (path[i] if i < len(path) else 0) + 1]
