"""Named specs: torchvision's and timm's ResNets, the CIFAR nets of the papers, and the patterns WRN-d-k and ResNeXt-29.

Each preset is a few lines that return a `ResNetSpec`; the registry refuses a duplicate name.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from resnet_bench.errors import BadInputError
from resnet_bench.spec import ResNetSpec, SpecError


class UnknownPresetError(BadInputError):
    """A model name that is no preset, with the nearest names."""


@dataclass(frozen=True)
class Preset:
    """A named spec and the family it belongs to."""

    name: str
    family: str  # torchvision, timm, cifar-resnet, cifar-plain, preact-resnet, resnext29, wrn
    build: Callable[[], ResNetSpec]


_REGISTRY: dict[str, Preset] = {}


def _register(name: str, family: str, build: Callable[[], ResNetSpec]) -> None:
    if name in _REGISTRY:
        raise ValueError(f"preset {name!r} is registered twice")
    _REGISTRY[name] = Preset(name, family, build)


# -- torchvision (He et al. 2015 Table 1; ResNeXt: Xie et al. 2017; Wide: Zagoruyko & Komodakis 2016) ----

def _torchvision(block: str, layers: tuple[int, ...], groups: int = 1, width_per_group: int = 64) -> ResNetSpec:
    return ResNetSpec(block=block, layers=layers, groups=groups, width_per_group=width_per_group)


_TORCHVISION = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 1, 64),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 1, 64),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": ("bottleneck", (3, 4, 23, 3), 32, 8),
    "resnext101_64x4d": ("bottleneck", (3, 4, 23, 3), 64, 4),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), 1, 128),
    "wide_resnet101_2": ("bottleneck", (3, 4, 23, 3), 1, 128),
}
for _name, _args in _TORCHVISION.items():
    _register(_name, "torchvision", lambda a=_args: _torchvision(*a))


# -- timm's "Bag of Tricks" and SE variants (He et al. 2019 ResNet-C/D/T; Hu et al. 2018): its own names ----------

# timm's SE-ResNets reduce the block's output width 16-fold (SEModule's rd_ratio=1/16).
SE_RATIO = 1 / 16
# name: (layers, groups, width_per_group, stem, downsample, se_ratio), as timm.models.resnet registers each.
_TIMM: dict[str, tuple[tuple[int, ...], int, int, str, str, float]] = {
    "resnet26d": ((2, 2, 2, 2), 1, 64, "deep", "avgpool", 0.0),
    "resnet26t": ((2, 2, 2, 2), 1, 64, "deep_tiered", "avgpool", 0.0),
    "resnet50d": ((3, 4, 6, 3), 1, 64, "deep", "avgpool", 0.0),
    "resnet101d": ((3, 4, 23, 3), 1, 64, "deep", "avgpool", 0.0),
    "seresnet50": ((3, 4, 6, 3), 1, 64, "imagenet", "conv", SE_RATIO),
    "seresnext50_32x4d": ((3, 4, 6, 3), 32, 4, "imagenet", "conv", SE_RATIO),
}


def _timm(layers: tuple[int, ...], groups: int, width_per_group: int, stem: str, downsample: str,
          se_ratio: float) -> ResNetSpec:
    return ResNetSpec(block="bottleneck", layers=layers, groups=groups, width_per_group=width_per_group, stem=stem,
                      downsample=downsample, se_ratio=se_ratio)


for _name, _args in _TIMM.items():
    _register(_name, "timm", lambda a=_args: _timm(*a))


# -- CIFAR-10 nets of He et al. 2015, section 4.2: 6n+2 layers, 16/32/64 planes, 3x3 stem ----------------

def cifar_resnet(depth: int, shortcut: str = "A", num_classes: int = 10) -> ResNetSpec:
    """The 6n+2-layer CIFAR net of He et al. 2015 §4.2 (shortcut A: the paper's ResNets; none: plain)."""
    if depth < 8 or (depth - 2) % 6:
        raise SpecError(f"CIFAR ResNet depth={depth} is not accepted; depth must be 6n+2 with n >= 1 (20, 32, 56, ...)")
    n = (depth - 2) // 6
    return ResNetSpec(
        block="basic", layers=(n, n, n), stem="cifar", stem_width=16, shortcut=shortcut, num_classes=num_classes
    )


for _depth in (20, 32, 44, 56, 110, 1202):
    _register(f"resnet{_depth}", "cifar-resnet", lambda d=_depth: cifar_resnet(d, "A"))
    # Options B and C of the paper's ImageNet study (§4.1), on its CIFAR nets.
    _register(f"resnet{_depth}_b", "cifar-resnet", lambda d=_depth: cifar_resnet(d, "B"))
    _register(f"resnet{_depth}_c", "cifar-resnet", lambda d=_depth: cifar_resnet(d, "C"))
for _depth in (20, 32, 44, 56, 110):
    _register(f"plain{_depth}", "cifar-plain", lambda d=_depth: cifar_resnet(d, "none"))
# Starting points of a search over the modern tweaks, on the paper's CIFAR nets: SE (timm's ratio) on option A, and
# ResNet-D (average-pool projections) on option B; the paper's 3x3 stem stays (a deep stem halves 32x32 inputs).
for _depth in (20, 56):
    _register(f"resnet{_depth}_se", "cifar-resnet",
              lambda d=_depth: dataclasses.replace(cifar_resnet(d, "A"), se_ratio=SE_RATIO))
    _register(f"resnet{_depth}_d", "cifar-resnet",
              lambda d=_depth: dataclasses.replace(cifar_resnet(d, "B"), downsample="avgpool"))


# -- pre-activation ResNets of He et al. 2016 (CIFAR, as the authors' resnet-1k-layers code) --------------

def preact_resnet(depth: int, num_classes: int = 10) -> ResNetSpec:
    """Pre-activation CIFAR ResNet of He et al. 2016: 110 has basic blocks (6n+2), deeper nets bottlenecks (9n+2)."""
    if depth == 110:
        # No code of the authors builds it; the paper's setup is "the same as [1]", whose CIFAR nets use option A.
        return ResNetSpec(
            block="preact_basic", layers=(18, 18, 18), stem="cifar", stem_width=16, shortcut="A",
            num_classes=num_classes,
        )
    if depth < 11 or (depth - 2) % 9:
        raise SpecError(f"pre-activation ResNet depth={depth} is not accepted; use 110 or 9n+2 (164, 1001, ...)")
    # As resnet-1k-layers: a conv-only stem, stride in the first 1x1, projections on the pre-activated input.
    n = (depth - 2) // 9
    return ResNetSpec(
        block="preact_bottleneck", layers=(n, n, n), stem="cifar", stem_width=16, stride_on="1x1",
        num_classes=num_classes,
    )


for _depth in (110, 164, 1001):
    _register(f"preact_resnet{_depth}", "preact-resnet", lambda d=_depth: preact_resnet(d))


# -- ResNeXt-29 of Xie et al. 2017 §5.3: 3 stages of 3 bottlenecks, 64-channel 3x3 stem ------------------

def resnext29(cardinality: int, bottleneck_width: int, num_classes: int = 10) -> ResNetSpec:
    """ResNeXt-29, C x d: cardinality C, bottleneck width d in the first stage (Xie et al. 2017 §5.3)."""
    # As the authors' released code (facebookresearch/ResNeXt, models/resnext.lua): post-activation blocks,
    # stride in the grouped 3x3, projection (conv + BN) where channels change. Its README says the paper's
    # CIFAR figures came from pre-activated blocks; the released, better-performing form is built here.
    return ResNetSpec(
        block="bottleneck", layers=(3, 3, 3), stem="cifar", stem_width=64, groups=cardinality,
        width_per_group=bottleneck_width, num_classes=num_classes,
    )


for _c in (1, 2, 4, 8, 16):
    _register(f"resnext29_{_c}x64d", "resnext29", lambda c=_c: resnext29(c, 64))


# -- Wide ResNets of Zagoruyko & Komodakis 2016: WRN-d-k, (d-4)/6 pre-activation blocks per stage --------

def wide_resnet(depth: int, widen: int, dropout: float = 0.0, num_classes: int = 10) -> ResNetSpec:
    """WRN-depth-widen: 16k/32k/64k planes, (depth-4)/6 pre-activation basic blocks per stage."""
    if depth < 10 or (depth - 4) % 6:
        raise SpecError(f"WRN depth={depth} is not accepted; depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...)")
    n = (depth - 4) // 6
    return ResNetSpec(
        block="preact_basic", layers=(n, n, n), widths=(16 * widen, 32 * widen, 64 * widen), stem="cifar",
        stem_width=16, dropout=dropout, num_classes=num_classes,
    )


for _d, _k in ((16, 8), (28, 10), (40, 4)):
    _register(f"wrn{_d}_{_k}", "wrn", lambda d=_d, k=_k: wide_resnet(d, k))

# Names outside the registry that a pattern builds: any WRN-d-k and any ResNeXt-29 C x d.
_PATTERNS: tuple[tuple[re.Pattern[str], str, Callable[..., ResNetSpec]], ...] = (
    (re.compile(r"wrn(\d+)_(\d+)"), "wrn", lambda d, k: wide_resnet(int(d), int(k))),
    (re.compile(r"resnext29_(\d+)x(\d+)d"), "resnext29", lambda c, d: resnext29(int(c), int(d))),
)


def names(family: str | None = None) -> list[str]:
    """The registered preset names, in registration order, optionally of one family."""
    return [p.name for p in _REGISTRY.values() if family is None or p.family == family]


def family(name: str) -> str:
    """The family of a preset name (also of names that a pattern builds)."""
    if name in _REGISTRY:
        return _REGISTRY[name].family
    for pattern, fam, _ in _PATTERNS:
        if pattern.fullmatch(name):
            return fam
    raise _unknown(name)


def get(name: str) -> ResNetSpec:
    """The spec of a preset name, such as `resnet56`, `resnext50_32x4d` or any `wrn{d}_{k}`."""
    if name in _REGISTRY:
        return _REGISTRY[name].build()
    for pattern, _, build in _PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return build(*match.groups())
    raise _unknown(name)


def _unknown(name: str) -> UnknownPresetError:
    close = difflib.get_close_matches(name, names(), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UnknownPresetError(
        f"unknown model {name!r}: {hint}a model is a preset name (see `resnet-bench models`), "
        "a one-line spec such as block=basic,layers=2-2-2-2, a preset with fields replaced such as "
        "resnet20,stem_width=8, or a path to a JSON spec"
    )


def resolve(model: ResNetSpec | str | os.PathLike[str]) -> ResNetSpec:
    """The spec of a spec, a preset name, a one-line spec (`key=value,...`), a preset name with fields replaced
    (`resnet20,stem_width=8`: this preset, but) or a path to a JSON spec."""
    if isinstance(model, ResNetSpec):
        return model
    if isinstance(model, os.PathLike):
        return ResNetSpec.from_json_file(model)
    if not isinstance(model, str):
        raise BadInputError(f"model={model!r} is not accepted; give a ResNetSpec, a preset name or a spec string")
    text = model.strip()
    first, _, rest = text.partition(",")
    if "=" in rest and "=" not in first:
        return get(first.strip()).override(rest)
    if "=" in text:
        return ResNetSpec.parse(text)
    if text.endswith(".json") or os.sep in text or "/" in text:
        return ResNetSpec.from_json_file(text)
    return get(text)
