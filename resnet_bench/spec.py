"""ResNetSpec: the one description of a residual network, with its dict, JSON and one-line forms."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_bench.errors import BadInputError, is_positive_int

# The accepted values (BLOCKS, STEMS, ...) stay importable from here, where they were defined before fields.py.
from resnet_bench.fields import (
    BLOCKS as BLOCKS,
    BOTTLENECK_BLOCKS,
    CHOICE,
    DEFAULT_STRIDE_ON,
    DEFAULTS,
    DOWNSAMPLES as DOWNSAMPLES,
    FIELDS,
    FLAG,
    FRACTION,
    INT,
    INT_TUPLE,
    PADS as PADS,
    PREACT_BLOCKS,
    SHORTCUTS as SHORTCUTS,
    SPEC_FIELDS,
    STEMS as STEMS,
    STRIDE_ON as STRIDE_ON,
    Field,
)

# A bottleneck widens its output by this factor over its planes (He et al. 2015, Fig. 5).
BOTTLENECK_EXPANSION = 4


class SpecError(BadInputError):
    """A ResNetSpec field, or a one-line or JSON spec, that cannot describe a network."""


@dataclass(frozen=True, eq=False)
class ResNetSpec:
    """A residual network: stem, then stages of blocks, then global pooling and a linear classifier.

    The fields keep what they were given (widths and stride_on stay None when not given); what depends on
    other fields is a property, so `dataclasses.replace` recomputes it. Two specs are equal when their
    one-line forms are, e.g. widths=None and the widths that None implies.
    """

    # Each default, the values each field accepts and the networks that take it are its row in fields.py.
    block: str = DEFAULTS["block"]  # residual unit: basic, bottleneck, preact_basic or preact_bottleneck
    layers: tuple[int, ...] = DEFAULTS["layers"]  # blocks per stage; every stage after the first halves the resolution
    # planes per stage (a bottleneck outputs 4x); None: stem_width * 2**stage
    widths: tuple[int, ...] | None = DEFAULTS["widths"]
    # imagenet: 7x7/2 conv + 3x3/2 max-pool; cifar: 3x3/1 conv; deep: three 3x3 convs (the first /2, widths
    # stem_width/2, stem_width/2, stem_width) + max-pool, ResNet-C of He et al. 2019; deep_tiered: timm's "t" stem
    # (3/8, 1/2, 1 of stem_width)
    stem: str = DEFAULTS["stem"]
    stem_width: int = DEFAULTS["stem_width"]  # output channels of the stem (of its last convolution)
    groups: int = DEFAULTS["groups"]  # cardinality: groups of a bottleneck's 3x3 conv (ResNeXt's C)
    # bottleneck inner width = int(planes * width_per_group / 64) * groups
    width_per_group: int = DEFAULTS["width_per_group"]
    # bottleneck only: the strided conv, 3x3 (torchvision v1.5; default) or 1x1 (paper)
    stride_on: str | None = DEFAULTS["stride_on"]
    # A: zero-padded identity; B: projection where shape changes; C: always; none: plain net
    shortcut: str = DEFAULTS["shortcut"]
    # shortcut B or C: conv, a strided 1x1 conv + BN; avgpool, a 2x2/2 average pool then a 1x1 conv + BN (ResNet-D)
    downsample: str = DEFAULTS["downsample"]
    # shortcut A: the zero channels go after the identity (fb.resnet.torch) or half on each side (the CIFAR
    # reimplementation whose pretrained ResNet-20..1202 weights are widely used)
    pad: str = DEFAULTS["pad"]
    dropout: float = DEFAULTS["dropout"]  # dropout probability between the convolutions of a block (WRN uses 0.3)
    # squeeze-and-excitation reduction, timm's rd_ratio: the SE's hidden width is the block's output width times
    # this, rounded to a multiple of 8 (at least 8); 0: no SE (Hu et al. 2018 use 1/16)
    se_ratio: float = DEFAULTS["se_ratio"]
    # stochastic depth: the chance of dropping a block's residual branch, per sample in training, rising linearly
    # from 0 at the first block to this at the last (Huang et al. 2016); 0: off
    drop_path: float = DEFAULTS["drop_path"]
    in_channels: int = DEFAULTS["in_channels"]  # channels of the input image: 1 for grey, 3 for RGB
    num_classes: int = DEFAULTS["num_classes"]  # outputs of the final linear layer
    # start the last BN of each branch at 0, so each block starts as identity
    zero_init_residual: bool = DEFAULTS["zero_init_residual"]

    def __post_init__(self) -> None:
        _validate(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResNetSpec):
            return NotImplemented
        return self.format() == other.format()

    def __hash__(self) -> int:
        return hash(self.format())

    # -- derived properties -------------------------------------------------------------------

    @property
    def is_bottleneck(self) -> bool:
        """True for bottleneck and pre-activation bottleneck blocks."""
        return self.block in BOTTLENECK_BLOCKS

    @property
    def is_preact(self) -> bool:
        """True for the pre-activation blocks of He et al. 2016."""
        return self.block in PREACT_BLOCKS

    @property
    def expansion(self) -> int:
        """Output channels of a block divided by its planes."""
        return BOTTLENECK_EXPANSION if self.is_bottleneck else 1

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """Planes of each stage: `widths`, or stem_width doubled per stage when widths is None."""
        return self.widths if self.widths is not None else _doubling_widths(self.stem_width, len(self.layers))

    @property
    def strided_conv(self) -> str | None:
        """The bottleneck conv that strides, `3x3` or `1x1` (`stride_on`, or its default); None for basic blocks."""
        if not self.is_bottleneck:
            return None
        return self.stride_on if self.stride_on is not None else DEFAULT_STRIDE_ON

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of each stage."""
        return tuple(w * self.expansion for w in self.stage_widths)

    @property
    def inner_widths(self) -> tuple[int, ...]:
        """Channels of a bottleneck's grouped 3x3 conv per stage (torchvision's rule)."""
        return tuple(_inner_width(w, self.width_per_group, self.groups) for w in self.stage_widths)

    @property
    def depth(self) -> int:
        """Weighted layers on the main path (stem conv + block convs + classifier), as papers name nets."""
        return 2 + sum(self.layers) * (3 if self.is_bottleneck else 2)

    # -- the dict, JSON and one-line forms ----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field as given, as plain JSON types (tuples become lists; widths and stride_on may be None)."""
        out = dataclasses.asdict(self)
        for name in _TUPLE_FIELDS:
            if out[name] is not None:
                out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetSpec:
        """The spec of a dict such as `to_dict` returns; unknown keys and wrong types are errors."""
        if not isinstance(data, dict):
            raise SpecError(f"a spec must be a JSON object of fields, got {type(data).__name__}")
        unknown = sorted(set(data) - set(FIELD_NAMES))
        if unknown:
            raise SpecError(f"unknown spec field {unknown[0]!r}; accepted: {', '.join(FIELD_NAMES)}")
        return cls(**{k: _coerce_sequence(k, v) for k, v in data.items()})

    def to_json(self) -> str:
        """The spec as one JSON object."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ResNetSpec:
        """The spec of a JSON object such as `to_json` returns."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"the JSON spec does not parse: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]) -> ResNetSpec:
        """The spec in a JSON file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"JSON spec file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"JSON spec file {str(path)!r} cannot be read: {exc}") from None
        try:
            return cls.from_json(text)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None

    def format(self) -> str:
        """The one-line form: block and layers, then every field that differs from its default."""
        # Fields are written as resolved (widths, stride_on), so a spec that gives its defaults formats as one that
        # does not.
        resolved = {f.name: getattr(self, f.attribute) for f in SPEC_FIELDS}
        implied = dict(DEFAULTS)
        implied.update(
            widths=_doubling_widths(self.stem_width, len(self.layers)),
            stride_on=DEFAULT_STRIDE_ON if self.is_bottleneck else None,
        )
        parts = []
        for name in FIELD_NAMES:
            value = resolved[name]
            if name in ("block", "layers") or value != implied[name]:
                parts.append(f"{name}={_format_value(value)}")
        return ",".join(parts)

    @classmethod
    def parse(cls, line: str) -> ResNetSpec:
        """The spec of a one-line form such as `block=bottleneck,layers=3-4-6-3,groups=32`."""
        values = _items(line)
        if not values:
            raise SpecError("an empty one-line spec; give fields as key=value, e.g. block=basic,layers=2-2-2-2")
        return cls(**values)

    def override(self, line: str) -> ResNetSpec:
        """This spec with the fields of a one-line form replaced: `stem_width=8,shortcut=B`."""
        return dataclasses.replace(self, **_items(line))

    def __str__(self) -> str:
        return self.format()


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ResNetSpec))
_TUPLE_FIELDS = tuple(f.name for f in SPEC_FIELDS if f.kind == INT_TUPLE)


def _items(line: str) -> dict[str, Any]:
    """The fields of a one-line form, parsed, in its order; SpecError names a bad item."""
    values: dict[str, Any] = {}
    for item in line.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep:
            raise SpecError(f"spec item {item!r} is not key=value (in {line!r})")
        if key not in FIELD_NAMES:
            raise SpecError(f"unknown spec field {key!r} in {line!r}; accepted: {', '.join(FIELD_NAMES)}")
        if key in values:
            raise SpecError(f"spec field {key!r} is given twice in {line!r}")
        values[key] = _parse_value(FIELDS[key], raw)
    return values


def _inner_width(planes: int, width_per_group: int, groups: int) -> int:
    # torchvision computes int(planes * (base_width / 64.0)) * groups; the integer form is exact.
    return (planes * width_per_group // 64) * groups


def _doubling_widths(stem_width: int, stages: int) -> tuple[int, ...]:
    """The default planes per stage: stem_width, doubled at every stage."""
    return tuple(stem_width * 2**i for i in range(stages))


def _rule(f: Field) -> str:
    """What a field accepts, in words, as its messages end."""
    if f.kind == CHOICE:
        return f"{f.name} must be one of: {', '.join(f.choices)}"
    if f.kind == FRACTION:
        return f"{f.name} must be a number in [0, 1)" + (f" ({f.note})" if f.note else "")
    return "it must be true or false" if f.kind == FLAG else "it must be an integer >= 1"


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or not value:
        raise SpecError(f"{name}={value!r} is not accepted; {name} must be a non-empty list of integers >= 1")
    for i, item in enumerate(value):
        if not is_positive_int(item):
            raise SpecError(f"{name}[{i}]={item!r} is not accepted; every entry of {name} must be an integer >= 1")
    return tuple(value)


def _coerce_sequence(name: str, value: Any) -> Any:
    """JSON has lists where the spec has tuples."""
    return tuple(value) if name in _TUPLE_FIELDS and isinstance(value, list) else value


def _checked(spec: ResNetSpec, f: Field) -> Any:
    """A field's value in its type (tuples, floats), or SpecError naming the field, the value and what it accepts."""
    value = getattr(spec, f.name)
    if f.kind == INT_TUPLE:
        return _int_tuple(f.name, value)
    if not f.accepts(value):
        raise SpecError(f"{f.name}={value!r} is not accepted; {_rule(f)}")
    return float(value) if f.kind == FRACTION else value


def _validate(spec: ResNetSpec) -> None:
    """Check every field, then what the fields ask of each other; normalise layers, widths and the fractions to
    their types, never store a derived value."""
    for f in SPEC_FIELDS:
        # An unset field is resolved from the others; set on a block that does not take it, _check_taken refuses it.
        if getattr(spec, f.name) is None and f.default is None or f.default is None and spec.block not in f.blocks:
            continue
        object.__setattr__(spec, f.name, _checked(spec, f))  # the dataclass is frozen; this runs in __post_init__
    _check_stages(spec)
    for f in SPEC_FIELDS:
        _check_taken(spec, f)
    _check_stem_and_shortcut(spec)


def _check_taken(spec: ResNetSpec, f: Field) -> None:
    """A field that differs from its default on a network whose block or shortcut does not take it is refused."""
    value = getattr(spec, f.name)
    if value == f.default or f.takes(spec.block, spec.shortcut):
        return
    shown = _format_value(value) if isinstance(value, bool) else repr(value)
    if spec.block not in f.blocks and f.why_not_block:
        raise SpecError(f"{f.name}={shown} is not accepted with block={spec.block}: {f.why_not_block}")
    if spec.block not in f.blocks:
        default = _format_value(f.default) if f.default is not None else "(unset)"
        raise SpecError(
            f"{f.name}={shown} is a {f.blocks[0]} option; block={spec.block} accepts only {f.name}={default}; "
            f"use {' or '.join(f'block={b}' for b in f.blocks)}"
        )
    raise SpecError(f"{f.name}={shown} is not accepted with shortcut={spec.shortcut}: {f.why_not_shortcut}")


def _check_stages(spec: ResNetSpec) -> None:
    """One width per stage, and a bottleneck of at least one channel in every stage."""
    widths = spec.stage_widths
    if len(widths) != len(spec.layers):
        raise SpecError(
            f"widths={'-'.join(map(str, widths))} has {len(widths)} stages but layers="
            f"{'-'.join(map(str, spec.layers))} has {len(spec.layers)}; give one width per stage"
        )
    if not spec.is_bottleneck:
        return
    for stage, planes in enumerate(widths):
        if _inner_width(planes, spec.width_per_group, spec.groups) < 1:
            raise SpecError(
                f"width_per_group={spec.width_per_group} gives stage {stage + 1} (planes {planes}) a "
                f"bottleneck of 0 channels; width_per_group must be >= {math.ceil(64 / planes)}"
            )


def _check_stem_and_shortcut(spec: ResNetSpec) -> None:
    """A deep stem keeps a channel in every convolution; shortcut A can only widen."""
    if spec.stem in ("deep", "deep_tiered"):
        least = 8 if spec.stem == "deep_tiered" else 2  # every convolution of the stem keeps a channel
        if spec.stem_width < least:
            raise SpecError(
                f"stem_width={spec.stem_width} is not accepted with stem={spec.stem}; it must be >= {least}"
            )
    if spec.shortcut == "A":
        channels = (spec.stem_width, *spec.stage_channels)
        for stage in range(len(spec.layers)):
            if channels[stage + 1] < channels[stage]:
                raise SpecError(
                    f"shortcut=A pads channels with zeros and cannot narrow stage {stage + 1} from "
                    f"{channels[stage]} to {channels[stage + 1]} channels; use shortcut=B or C"
                )


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "-".join(str(v) for v in value)
    return str(value)


_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def _parse_value(f: Field, raw: str) -> Any:
    """A field's value from its text in a one-line form; the checks come when the spec is built."""
    if f.kind == INT_TUPLE:
        try:
            return tuple(int(part) for part in raw.split("-"))
        except ValueError:
            raise SpecError(
                f"{f.name}={raw!r} is not accepted; {f.name} is integers joined by '-', e.g. {f.name}=3-4-6-3"
            ) from None
    if f.kind in (INT, FRACTION):
        try:
            return int(raw) if f.kind == INT else float(raw)
        except ValueError:
            rule = f"{f.name} must be an integer >= 1" if f.kind == INT else _rule(f)
            raise SpecError(f"{f.name}={raw!r} is not accepted; {rule}") from None
    if f.kind == FLAG:
        if raw.lower() in _TRUE + _FALSE:
            return raw.lower() in _TRUE
        raise SpecError(f"{f.name}={raw!r} is not accepted; {_rule(f)}")
    if len(raw) == 1 and raw.upper() in f.choices:  # a one-letter choice in either case: shortcut=a is shortcut=A
        return raw.upper()
    return raw
