"""The training recipe: how a candidate is trained, the named recipes, and the learning-rate schedule.

Plain Python, no torch: the study file, the trial record and the report read recipes without paying
for the trainer.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resnet_bench.errors import BadInputError, is_number, is_positive_int

SCHEDULES = ("step", "cosine", "linear", "constant")
PRECISIONS = ("auto", "bf16", "fp32")
LR_REFERENCE_BATCH = 128  # `lr` is per 128 images of batch and scales linearly (Goyal et al. 2017, arXiv 1706.02677)


class RecipeError(BadInputError):
    """A recipe field outside what it accepts."""


@dataclass(frozen=True)
class Recipe:
    """How a candidate is trained; defaults are He et al. 2015's CIFAR recipe (§4.2), shortened to 30 epochs.

    What each field accepts is its row in RECIPE_FIELDS, read by Recipe and by the study file's [recipe].
    """

    epochs: int = 30  # passes over the training split
    batch_size: int = 128  # images per step
    lr: float = 0.1  # peak SGD learning rate per 128 images of batch; the step uses lr * batch_size / 128
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False  # Nesterov momentum
    weight_decay: float = 1e-4  # L2 on convolution and linear weights; never on BN parameters or biases
    warmup_epochs: float = 0.0  # linear warm-up from 0 to the peak learning rate, epochs
    schedule: str = "step"  # after warm-up: step (/10 at milestones), cosine or linear to 0, constant
    milestones: tuple[float, ...] = (0.5, 0.75)  # step schedule: fractions of training where lr is divided by 10
    label_smoothing: float = 0.0  # cross-entropy label smoothing (Szegedy et al. 2016)
    seed: int = 0  # shuffling, augmentation and dropout; the model's weights are the caller's
    # auto: bf16 autocast on CUDA and on CPUs that multiply bf16 natively, fp32 on other CPUs (devices.py); a
    # study resolves auto once, when it is made, so that all its trials train alike (search/study.py); bf16; fp32
    precision: str = "auto"
    channels_last: bool | None = None  # memory format; None: the device's faster one (devices.resolve_channels_last)
    # torch.compile the training forward and backward. Every new architecture compiles anew: the first step's
    # time is reported as compile_seconds, apart from train_seconds (see README, "GPU speed").
    compile: bool = False

    def __post_init__(self) -> None:
        for f in RECIPE_FIELDS:
            value = getattr(self, f.name)
            if f.rule and not f.accepts(value):
                raise RecipeError(f"recipe {f.name}={value!r} is not accepted; {f.rule}")
        if self.warmup_epochs >= self.epochs:
            raise RecipeError(f"recipe warmup_epochs={self.warmup_epochs:g} does not fit in epochs={self.epochs}: the "
                              "run would end before its schedule starts; give warmup_epochs < epochs")
        object.__setattr__(self, "milestones", tuple(self.milestones))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON types."""
        out = dataclasses.asdict(self)
        out["milestones"] = list(self.milestones)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """The recipe of a dict such as `to_dict` returns; unknown keys are errors."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise RecipeError(f"unknown recipe field {unknown[0]!r}; accepted: {', '.join(names)}")
        return cls(**{k: tuple(v) if k == "milestones" else v for k, v in data.items()})


@dataclass(frozen=True)
class RecipeField:
    """How one recipe field is checked: by Recipe itself and by a study file's [recipe]."""

    name: str
    kind: str  # int, float, str, bool or tuple: what a study file may give (an int or float also as a range)
    accepts: Callable[[Any], bool]
    rule: str  # what Recipe's message says after "is not accepted; " ("": Recipe takes any value)
    accepted: str  # the accepted values in the plural, as the study file's messages end ("": not a study key)


def _count(name: str) -> RecipeField:
    """An integer >= 1."""
    return RecipeField(name, "int", is_positive_int, "it must be an integer >= 1", "integers >= 1")


def _number(name: str, low: float, high: float) -> RecipeField:
    """A number in [low, high] (high may be math.inf)."""
    return RecipeField(name, "float", lambda v: is_number(v) and low <= v <= high, f"{name} must be a number in "
                       f"[{low}, {high}]", f"numbers >= {low}" if high == math.inf else f"numbers in [{low}, {high}]")


def _flag(name: str) -> RecipeField:
    """True or false: the study file checks it; Recipe reads any value as true or false."""
    return RecipeField(name, "bool", lambda v: isinstance(v, bool), "", "true or false")


def _choice(name: str, choices: tuple[str, ...], accepted: str) -> RecipeField:
    return RecipeField(name, "str", lambda v: v in choices, f"{name} must be one of {', '.join(choices)}", accepted)


# In Recipe's order; Recipe checks its fields in this order, the study file's [recipe] takes those with `accepted`.
RECIPE_FIELDS: tuple[RecipeField, ...] = (
    _count("epochs"),
    _count("batch_size"),
    _number("lr", 0, math.inf),
    _number("momentum", 0, 1),
    _flag("nesterov"),
    _number("weight_decay", 0, math.inf),
    _number("warmup_epochs", 0, math.inf),
    _choice("schedule", SCHEDULES, f"{', '.join(SCHEDULES[:-1])} or {SCHEDULES[-1]}"),
    RecipeField("milestones", "tuple", lambda v: all(0 < m < 1 for m in v),
                "milestones must be fractions of training in (0, 1)", ""),
    _number("label_smoothing", 0, 1),
    RecipeField("seed", "int", lambda v: True, "", ""),  # any integer; the study file's seed is its own key
    _choice("precision", PRECISIONS, ", ".join(PRECISIONS)),
    _flag("channels_last"),  # None too: the device's faster format (devices.resolve_channels_last)
    _flag("compile"),
)


RECIPES: dict[str, Recipe] = {
    # He et al. 2015 §4.2: lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, lr /10 at 50% and 75%
    # (32k and 48k of 64k iterations), 182 epochs of 45k images.
    "he2015": Recipe(epochs=182, batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="step"),
    # For search: a few epochs, short warm-up, then linear decay to zero (one-cycle), Nesterov, batch 64.
    "fast": Recipe(epochs=5, batch_size=64, lr=0.2, nesterov=True, weight_decay=5e-4, warmup_epochs=1.0,
                   schedule="linear", label_smoothing=0.0),
}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A named recipe, or a recipe as a JSON object (as a trial stores it), with fields overridden.

    A named recipe keeps its shape at any length: when `epochs` is overridden and `warmup_epochs` is not, the
    warm-up scales with the epochs (fast: 1 of 5 epochs, so 0.2 of a 1-epoch run); the milestones are fractions
    of training already. A stored recipe (JSON) is taken as it is.
    """
    if name.lstrip().startswith("{"):
        try:
            base = Recipe.from_dict(json.loads(name))
        except (json.JSONDecodeError, TypeError) as exc:
            raise RecipeError(f"recipe {name!r} is not a JSON object of recipe fields: {exc}") from None
    elif name in RECIPES:
        base = RECIPES[name]
        epochs = overrides.get("epochs")
        if epochs is not None and overrides.get("warmup_epochs") is None and base.warmup_epochs:
            overrides = {**overrides, "warmup_epochs": base.warmup_epochs * epochs / base.epochs}
    else:
        raise RecipeError(f"recipe={name!r} is not accepted; use one of: {', '.join(RECIPES)}, or a JSON object")
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def lr_factor(recipe: Recipe, steps_per_epoch: int, total: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate after `step` optimizer steps (of `total`)."""
    warmup = round(recipe.warmup_epochs * steps_per_epoch)
    milestones = [round(m * total) for m in recipe.milestones]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if recipe.schedule == "step":
            return 0.1 ** sum(step >= m for m in milestones)
        if recipe.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if recipe.schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


def precision_trained(stored: str, recipe_precision: str, device: str) -> str:
    """bf16 or fp32: what a run trained in, as its record or checkpoint stored it; for a run of a release that did
    not store it, what its recipe's precision meant then (auto: bf16 autocast on CUDA, fp32 on the CPU); "" for a
    run without a device (never trained)."""
    if stored:
        return stored
    if recipe_precision != "auto":
        return recipe_precision
    return ("bf16" if device.startswith("cuda") else "fp32") if device else ""


def describe_recipe(name: str, recipe: Recipe) -> str:
    """A recipe in words: the named recipe it started from and the fields that differ from it."""
    named = RECIPES[name].to_dict() if name in RECIPES else {}
    changed = [f"{k}={v}" for k, v in recipe.to_dict().items() if named.get(k) != v]
    return ", ".join([name, *changed])
