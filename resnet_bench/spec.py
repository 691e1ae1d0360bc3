"""ResNetSpec: the one description of a residual network, with its dict, JSON and one-line forms."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_bench.errors import BadInputError, check_positive_int, is_positive_int

BLOCKS = ("basic", "bottleneck", "preact_basic", "preact_bottleneck")
STEMS = ("imagenet", "cifar", "deep", "deep_tiered")
SHORTCUTS = ("A", "B", "C", "none")
DOWNSAMPLES = ("conv", "avgpool")
PADS = ("after", "both")
STRIDE_ON = ("3x3", "1x1")
# A bottleneck with stride_on unset strides in its 3x3 conv, as torchvision's ResNet "v1.5".
DEFAULT_STRIDE_ON = "3x3"

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

    block: str = "basic"  # residual unit: basic, bottleneck, preact_basic or preact_bottleneck
    layers: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage; every stage after the first halves the resolution
    widths: tuple[int, ...] | None = None  # planes per stage (a bottleneck outputs 4x); None: stem_width * 2**stage
    # imagenet: 7x7/2 conv + 3x3/2 max-pool; cifar: 3x3/1 conv; deep: three 3x3 convs (the first /2, widths
    # stem_width/2, stem_width/2, stem_width) + max-pool, ResNet-C of He et al. 2019; deep_tiered: timm's "t" stem
    # (3/8, 1/2, 1 of stem_width)
    stem: str = "imagenet"
    stem_width: int = 64  # output channels of the stem (of its last convolution)
    groups: int = 1  # cardinality: groups of a bottleneck's 3x3 conv (ResNeXt's C)
    width_per_group: int = 64  # bottleneck inner width = int(planes * width_per_group / 64) * groups
    stride_on: str | None = None  # bottleneck only: the strided conv, 3x3 (torchvision v1.5; default) or 1x1 (paper)
    shortcut: str = "B"  # A: zero-padded identity; B: projection where shape changes; C: always; none: plain net
    # shortcut B or C: conv, a strided 1x1 conv + BN; avgpool, a 2x2/2 average pool then a 1x1 conv + BN (ResNet-D)
    downsample: str = "conv"
    # shortcut A: the zero channels go after the identity (fb.resnet.torch) or half on each side (the CIFAR
    # reimplementation whose pretrained ResNet-20..1202 weights are widely used)
    pad: str = "after"
    dropout: float = 0.0  # dropout probability between the convolutions of a block (WRN uses 0.3)
    # squeeze-and-excitation reduction, timm's rd_ratio: the SE's hidden width is the block's output width times
    # this, rounded to a multiple of 8 (at least 8); 0: no SE (Hu et al. 2018 use 1/16)
    se_ratio: float = 0.0
    # stochastic depth: the chance of dropping a block's residual branch, per sample in training, rising linearly
    # from 0 at the first block to this at the last (Huang et al. 2016); 0: off
    drop_path: float = 0.0
    in_channels: int = 3  # channels of the input image: 1 for grey, 3 for RGB
    num_classes: int = 1000  # outputs of the final linear layer
    zero_init_residual: bool = False  # start the last BN of each branch at 0, so each block starts as identity

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
        return self.block in ("bottleneck", "preact_bottleneck")

    @property
    def is_preact(self) -> bool:
        """True for the pre-activation blocks of He et al. 2016."""
        return self.block.startswith("preact_")

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
        # widths and stride_on are written as resolved, so a spec that gives its defaults formats as one that does not.
        resolved = {name: getattr(self, name) for name in FIELD_NAMES}
        resolved.update(widths=self.stage_widths, stride_on=self.strided_conv)
        implied = dict(_FIELD_DEFAULTS)
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
_FIELD_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ResNetSpec)}
_INT_FIELDS = ("stem_width", "groups", "width_per_group", "in_channels", "num_classes")
_TUPLE_FIELDS = ("layers", "widths")
# probability-like fields: numbers in [0, 1), stored as floats; 0 is off
_FRACTION_FIELDS = {
    "dropout": "dropout must be a number in [0, 1)",
    "se_ratio": "se_ratio must be a number in [0, 1) (0: no squeeze-and-excitation; timm's SE-ResNets: 0.0625)",
    "drop_path": "drop_path must be a number in [0, 1) (0: no stochastic depth)",
}


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
        values[key] = _parse_value(key, raw)
    return values


def _inner_width(planes: int, width_per_group: int, groups: int) -> int:
    # torchvision computes int(planes * (base_width / 64.0)) * groups; the integer form is exact.
    return (planes * width_per_group // 64) * groups


def _doubling_widths(stem_width: int, stages: int) -> tuple[int, ...]:
    """The default planes per stage: stem_width, doubled at every stage."""
    return tuple(stem_width * 2**i for i in range(stages))


def _choice(name: str, value: Any, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise SpecError(f"{name}={value!r} is not accepted; {name} must be one of: {', '.join(accepted)}")


def _fraction(name: str, value: Any) -> float:
    """A probability-like field: a number in [0, 1), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value < 1:
        raise SpecError(f"{name}={value!r} is not accepted; {_FRACTION_FIELDS[name]}")
    return float(value)


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


def _validate(spec: ResNetSpec) -> None:
    """Check every field; normalise layers, widths and dropout to their types, never store a derived value."""
    set_field = object.__setattr__  # the dataclass is frozen; this runs once, inside __post_init__
    _choice("block", spec.block, BLOCKS)
    set_field(spec, "layers", _int_tuple("layers", spec.layers))
    _choice("stem", spec.stem, STEMS)
    check_positive_int("stem_width", spec.stem_width, error=SpecError)
    if spec.widths is not None:
        set_field(spec, "widths", _int_tuple("widths", spec.widths))
    widths = spec.stage_widths
    if len(widths) != len(spec.layers):
        raise SpecError(
            f"widths={'-'.join(map(str, widths))} has {len(widths)} stages but layers="
            f"{'-'.join(map(str, spec.layers))} has {len(spec.layers)}; give one width per stage"
        )
    for name in ("groups", "width_per_group", "in_channels", "num_classes"):
        check_positive_int(name, getattr(spec, name), error=SpecError)
    _choice("shortcut", spec.shortcut, SHORTCUTS)
    _choice("downsample", spec.downsample, DOWNSAMPLES)
    _choice("pad", spec.pad, PADS)
    for name in _FRACTION_FIELDS:
        set_field(spec, name, _fraction(name, getattr(spec, name)))
    if not isinstance(spec.zero_init_residual, bool):
        raise SpecError(
            f"zero_init_residual={spec.zero_init_residual!r} is not accepted; it must be true or false"
        )

    if spec.is_bottleneck:
        if spec.stride_on is not None:
            _choice("stride_on", spec.stride_on, STRIDE_ON)
        for stage, planes in enumerate(widths):
            if _inner_width(planes, spec.width_per_group, spec.groups) < 1:
                raise SpecError(
                    f"width_per_group={spec.width_per_group} gives stage {stage + 1} (planes {planes}) a "
                    f"bottleneck of 0 channels; width_per_group must be >= {math.ceil(64 / planes)}"
                )
    else:
        for name, default in (("groups", 1), ("width_per_group", 64), ("stride_on", None)):
            if getattr(spec, name) != default:
                raise SpecError(
                    f"{name}={getattr(spec, name)!r} is a bottleneck option; block={spec.block} accepts "
                    f"only {name}={_format_value(default) if default is not None else '(unset)'}; "
                    "use block=bottleneck or block=preact_bottleneck"
                )

    if spec.stem in ("deep", "deep_tiered"):
        least = 8 if spec.stem == "deep_tiered" else 2  # every convolution of the stem keeps a channel
        if spec.stem_width < least:
            raise SpecError(
                f"stem_width={spec.stem_width} is not accepted with stem={spec.stem}; it must be >= {least}"
            )
    if spec.downsample != "conv" and spec.shortcut not in ("B", "C"):
        raise SpecError(
            f"downsample={spec.downsample!r} is not accepted with shortcut={spec.shortcut}: it shapes a projection "
            "shortcut; use shortcut=B or C, or downsample=conv"
        )
    if spec.pad != "after" and spec.shortcut != "A":
        raise SpecError(
            f"pad={spec.pad!r} is not accepted with shortcut={spec.shortcut}: it places the zero channels of "
            "shortcut A; use shortcut=A, or pad=after"
        )
    if spec.drop_path and spec.shortcut == "none":
        raise SpecError(
            f"drop_path={spec.drop_path} is not accepted with shortcut=none: a dropped branch would leave the "
            "block no output; use drop_path=0 or a shortcut"
        )
    if spec.shortcut == "A":
        channels = (spec.stem_width, *spec.stage_channels)
        for stage in range(len(widths)):
            if channels[stage + 1] < channels[stage]:
                raise SpecError(
                    f"shortcut=A pads channels with zeros and cannot narrow stage {stage + 1} from "
                    f"{channels[stage]} to {channels[stage + 1]} channels; use shortcut=B or C"
                )
    if spec.zero_init_residual and spec.is_preact:
        raise SpecError(
            f"zero_init_residual=true is not accepted with block={spec.block}: a pre-activation branch "
            "ends in a convolution, not a BN; use block=basic or block=bottleneck"
        )
    if spec.zero_init_residual and spec.shortcut == "none":
        raise SpecError(
            "zero_init_residual=true is not accepted with shortcut=none: with no shortcut every block "
            "would start by outputting zeros"
        )


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "-".join(str(v) for v in value)
    return str(value)


_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def _parse_value(key: str, raw: str) -> Any:
    if key in _TUPLE_FIELDS:
        try:
            return tuple(int(part) for part in raw.split("-"))
        except ValueError:
            raise SpecError(
                f"{key}={raw!r} is not accepted; {key} is integers joined by '-', e.g. {key}=3-4-6-3"
            ) from None
    if key in _INT_FIELDS:
        try:
            return int(raw)
        except ValueError:
            raise SpecError(f"{key}={raw!r} is not accepted; {key} must be an integer >= 1") from None
    if key in _FRACTION_FIELDS:
        try:
            return float(raw)
        except ValueError:
            raise SpecError(f"{key}={raw!r} is not accepted; {_FRACTION_FIELDS[key]}") from None
    if key == "zero_init_residual":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SpecError(f"zero_init_residual={raw!r} is not accepted; it must be true or false")
    if key == "shortcut" and raw.lower() in ("a", "b", "c"):
        return raw.upper()
    return raw
