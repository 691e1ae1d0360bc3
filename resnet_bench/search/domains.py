"""What a study file may give a searched key: a fixed value (`stem = "cifar"`), a choice (`block = ["basic",
"bottleneck"]`) or a range (`blocks = { low = 1, high = 4 }`, with `step` or `log = true`), each value checked by
the key's row (fields.SPACE for [space], recipe.RECIPE_FIELDS for [recipe]); and the study file's error, which every
table of config.py raises. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resnet_bench.errors import BadInputError, is_number
from resnet_bench.fields import SpaceKey
from resnet_bench.recipe import RecipeField


class StudyFileError(BadInputError):
    """A study file that cannot be read; the message names the key path and what is accepted."""


@dataclass(frozen=True)
class Fixed:
    """One value."""

    value: Any


@dataclass(frozen=True)
class Choice:
    """One of several values."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """A number between low and high, inclusive; integers when both bounds are integers."""

    low: float
    high: float
    step: float | None = None  # grid step; None: continuous (floats) or 1 (integers)
    log: bool = False  # sample on a log scale

    @property
    def is_int(self) -> bool:
        """True when both bounds are integers."""
        return isinstance(self.low, int) and isinstance(self.high, int)


Domain = Fixed | Choice | Range


def parse_domain(table: dict[str, Any], key: str, path: str, rule: SpaceKey | RecipeField, default: Any) -> Domain:
    """A key's value: fixed, a choice or a range, each value checked by the key's rule (its kind, check and
    accepted values in words)."""
    where, kind, check, accepted = f"{path}{key}", rule.kind, rule.accepts, rule.accepted
    if key not in table:
        return Fixed(default)
    value = table[key]
    if isinstance(value, list):
        if not value:
            raise StudyFileError(f"{where}=[] is an empty choice; give at least one value ({accepted})")
        for v in value:
            if not check(v):
                raise StudyFileError(f"{where}: {v!r} is not accepted; the values must be {accepted}")
        if len(set(map(repr, value))) != len(value):
            raise StudyFileError(f"{where}={value!r} repeats a value")
        return Choice(tuple(value)) if len(value) > 1 else Fixed(value[0])
    if isinstance(value, dict):
        if kind not in ("int", "float"):
            raise StudyFileError(f"{where} takes a value or a list of values ({accepted}), not a range")
        known_keys(value, ("low", "high", "step", "log"), f"{where}.")
        low, high = value.get("low"), value.get("high")
        for bound, v in (("low", low), ("high", high)):
            if v is None or not check(v):
                raise StudyFileError(f"{where}.{bound}={v!r} is not accepted; it must be one of the {accepted}")
        if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
            raise StudyFileError(f"{where} is a range of integers; low and high must be integers")
        if low > high:
            raise StudyFileError(f"{where} is an empty range: low={low} > high={high}")
        step, log = value.get("step"), value.get("log", False)
        if step is not None and (not is_number(step) or step <= 0):
            raise StudyFileError(f"{where}.step={step!r} is not accepted; it must be a number > 0")
        if not isinstance(log, bool) or (log and (low <= 0 or step is not None)):
            raise StudyFileError(f"{where}.log={log!r} is not accepted; log needs low > 0 and no step")
        if kind == "float" and isinstance(low, int) and isinstance(high, int):
            low, high = float(low), float(high)
        return Fixed(low) if low == high else Range(low, high, step, log)
    if not check(value):
        raise StudyFileError(f"{where}={value!r} is not accepted; it must be one of the {accepted}")
    return Fixed(value)


def domain_json(d: Domain) -> Any:
    """A domain as the study file writes it (a value, a list, or a range's table), for the fingerprint."""
    if isinstance(d, Fixed):
        return d.value
    if isinstance(d, Choice):
        return list(d.values)
    return {"low": d.low, "high": d.high, "step": d.step, "log": d.log}


def extreme(domain: Domain, low: bool) -> Any:
    """A domain's smallest (low) or largest value."""
    if isinstance(domain, Fixed):
        return domain.value
    values = list(domain.values) if isinstance(domain, Choice) else [domain.low, domain.high]
    return min(values) if low else max(values)


def known_keys(table: dict[str, Any], accepted: tuple[str, ...], path: str) -> None:
    """Refuse a key of a study file's table that is not among `accepted`, naming its path and the accepted keys."""
    for key in table:
        if key not in accepted:
            raise StudyFileError(f"{path}{key} is not a study key; accepted under {path or 'the top level'}: "
                                 f"{', '.join(accepted)}")
