"""The generator's fields, one row each: type, accepted values, default, the networks that take it, and how a
study file searches it.

Everything that knows a field reads it from here: ResNetSpec's checks and its one-line form (spec.py), the study
file's [space] (search/config.py), the space's sampling (search/space.py) and the trials table's columns
(search/records.py). A new field is a row here, its attribute in ResNetSpec and its model code (README, "Layout").
Plain Python that imports none of those modules, so that each of them can read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resnet_bench.errors import is_number, is_positive_int

BLOCKS = ("basic", "bottleneck", "preact_basic", "preact_bottleneck")
BOTTLENECK_BLOCKS = ("bottleneck", "preact_bottleneck")
PREACT_BLOCKS = ("preact_basic", "preact_bottleneck")  # the pre-activation blocks of He et al. 2016
STEMS = ("imagenet", "cifar", "deep", "deep_tiered")
SHORTCUTS = ("A", "B", "C", "none")
DOWNSAMPLES = ("conv", "avgpool")
PADS = ("after", "both")
STRIDE_ON = ("3x3", "1x1")
# A bottleneck with stride_on unset strides in its 3x3 conv, as torchvision's ResNet "v1.5".
DEFAULT_STRIDE_ON = "3x3"

# A field's type: an integer >= 1, a number in [0, 1) (0: off), one of `choices`, true or false, or a non-empty
# tuple of integers >= 1 (one per stage).
INT, FRACTION, CHOICE, FLAG, INT_TUPLE = "int", "fraction", "choice", "flag", "int_tuple"
NOT_SEARCHED = ...  # the space_default of a field that a study file does not search


@dataclass(frozen=True)
class Field:
    """One field of ResNetSpec: what it accepts, which networks take it, and how a study file searches it."""

    name: str
    kind: str  # INT, FRACTION, CHOICE, FLAG or INT_TUPLE
    default: Any  # None: unset, resolved from the other fields (`read_as`)
    choices: tuple[str, ...] = ()  # CHOICE: the accepted values
    note: str = ""  # FRACTION: what its values mean, after the accepted range in messages
    blocks: tuple[str, ...] = BLOCKS  # the blocks that take it; any other keeps the default
    shortcuts: tuple[str, ...] = SHORTCUTS  # the shortcuts that take it; any other keeps the default
    # Why a block outside `blocks` refuses it, and the fix; "": it is an option of those blocks only.
    why_not_block: str = ""
    why_not_shortcut: str = ""  # why a shortcut outside `shortcuts` refuses it, and the fix
    read_as: str = ""  # the spec's attribute that holds the value it resolves to; "": the field itself
    column: bool = False  # a column of the trials table (the report's CSV)
    # Its default in a study file's [space], where it is a key of its own; NOT_SEARCHED: it is not one.
    space_default: Any = NOT_SEARCHED

    def accepts(self, value: Any) -> bool:
        """Whether the field takes this value, on a network that takes the field."""
        if self.kind == INT:
            return is_positive_int(value)
        if self.kind == FRACTION:
            return is_number(value) and 0 <= value < 1
        if self.kind == CHOICE:
            return value in self.choices
        if self.kind == FLAG:
            return isinstance(value, bool)
        return isinstance(value, (tuple, list)) and len(value) > 0 and all(is_positive_int(v) for v in value)

    def takes(self, block: str, shortcut: str) -> bool:
        """Whether a network of this block and shortcut takes the field (elsewhere it keeps its default)."""
        return block in self.blocks and shortcut in self.shortcuts

    @property
    def attribute(self) -> str:
        """The spec's attribute that holds the field's value as resolved."""
        return self.read_as or self.name

    @property
    def searched(self) -> bool:
        """Whether a study file's [space] has a key of this name."""
        return self.space_default is not NOT_SEARCHED


def _but(values: tuple[str, ...], *left_out: str) -> tuple[str, ...]:
    return tuple(v for v in values if v not in left_out)


def _choice(name: str, choices: tuple[str, ...], default: Any, **more: Any) -> Field:
    return Field(name, CHOICE, default, choices=choices, **more)


# In ResNetSpec's order; spec.py checks the fields in this order.
SPEC_FIELDS: tuple[Field, ...] = (
    _choice("block", BLOCKS, "basic", column=True, space_default="basic"),
    Field("layers", INT_TUPLE, (2, 2, 2, 2), column=True),  # searched as stages and blocks (SPACE_ONLY)
    Field("widths", INT_TUPLE, None, read_as="stage_widths", column=True),  # as base_width and width_multiplier
    _choice("stem", STEMS, "imagenet", column=True, space_default="cifar"),
    Field("stem_width", INT, 64, space_default=16),
    Field("groups", INT, 1, blocks=BOTTLENECK_BLOCKS, column=True, space_default=1),
    Field("width_per_group", INT, 64, blocks=BOTTLENECK_BLOCKS, column=True, space_default=64),
    _choice("stride_on", STRIDE_ON, None, blocks=BOTTLENECK_BLOCKS, read_as="strided_conv",
            space_default=DEFAULT_STRIDE_ON),
    _choice("shortcut", SHORTCUTS, "B", column=True, space_default="B"),
    _choice("downsample", DOWNSAMPLES, "conv", shortcuts=("B", "C"), column=True, space_default="conv",
            why_not_shortcut="it shapes a projection shortcut; use shortcut=B or C, or downsample=conv"),
    _choice("pad", PADS, "after", shortcuts=("A",), column=True, space_default="after",
            why_not_shortcut="it places the zero channels of shortcut A; use shortcut=A, or pad=after"),
    Field("dropout", FRACTION, 0.0, space_default=0.0),
    Field("se_ratio", FRACTION, 0.0, note="0: no squeeze-and-excitation; timm's SE-ResNets: 0.0625", column=True,
          space_default=0.0),
    Field("drop_path", FRACTION, 0.0, note="0: no stochastic depth", shortcuts=_but(SHORTCUTS, "none"), column=True,
          space_default=0.0,
          why_not_shortcut="a dropped branch would leave the block no output; use drop_path=0 or a shortcut"),
    Field("in_channels", INT, 3),
    Field("num_classes", INT, 1000),
    Field("zero_init_residual", FLAG, False, blocks=_but(BLOCKS, *PREACT_BLOCKS), shortcuts=_but(SHORTCUTS, "none"),
          space_default=False,
          why_not_block="a pre-activation branch ends in a convolution, not a BN; use block=basic or block=bottleneck",
          why_not_shortcut="with no shortcut every block would start by outputting zeros"),
)
FIELDS: dict[str, Field] = {f.name: f for f in SPEC_FIELDS}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in SPEC_FIELDS}


# -- the study file's [space] ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpaceKey:
    """A key of a study file's [space]: what its values may be, and its value when the file does not give it."""

    kind: str  # int, float, str or bool: an int or float key also takes a range
    accepts: Callable[[Any], bool]
    accepted: str  # the accepted values in words, as the study file's messages end
    default: Any


def _int_key(default: Any) -> SpaceKey:
    return SpaceKey("int", is_positive_int, "integers >= 1", default)


# The keys that are no field: the network's depth and widths, which the space draws otherwise than the spec says them.
SPACE_ONLY: dict[str, SpaceKey] = {
    "stages": _int_key(3),  # stages of the network (len(layers))
    "blocks": _int_key(2),  # blocks of each stage, drawn per stage (layers)
    "base_width": _int_key(None),  # planes of the first stage before the multiplier; None: stem_width
    # widths = base_width * 2**stage * width_multiplier, rounded (search/space.stage_widths)
    "width_multiplier": SpaceKey("float", lambda v: is_number(v) and v > 0, "numbers > 0", 1),
}
# The [space] keys of the first release, in the order messages list them. A key added since comes after them, in
# the table's order, and stays out of a study's fingerprint while it is fixed at its default, so that a study stored
# before the key existed resumes (search/config.py).
FIRST_SPACE_KEYS = ("stages", "blocks", "stem", "stem_width", "base_width", "width_multiplier", "block", "groups",
                    "width_per_group", "stride_on", "shortcut", "dropout", "zero_init_residual")

_SPACE_KINDS = {INT: "int", FRACTION: "float", CHOICE: "str", FLAG: "bool"}


def _space_key(f: Field) -> SpaceKey:
    accepted = {INT: "integers >= 1", FRACTION: "numbers in [0, 1)", FLAG: "true or false",
                CHOICE: f"one of {', '.join(f.choices)}"}[f.kind]
    return SpaceKey(_SPACE_KINDS[f.kind], f.accepts, accepted, f.space_default)


def _space() -> dict[str, SpaceKey]:
    keys = {**SPACE_ONLY, **{f.name: _space_key(f) for f in SPEC_FIELDS if f.searched}}
    order = [*FIRST_SPACE_KEYS, *(k for k in keys if k not in FIRST_SPACE_KEYS)]
    return {k: keys[k] for k in order}


SPACE: dict[str, SpaceKey] = _space()
