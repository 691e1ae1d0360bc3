"""resnet-bench: which residual network gives the most accuracy for this much compute.

`import resnet_bench as rb`: `rb.ResNetSpec`, `rb.presets`, `rb.build_model("resnet56")`,
`rb.profile("resnext50_32x4d")`. The parts
that need torch are imported on first use, so that reading specs and presets stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resnet_bench import presets
from resnet_bench.errors import BadInputError
from resnet_bench.profiling import Cost, Profile, Speed, count_cost, measure_speed, profile
from resnet_bench.spec import ResNetSpec, SpecError
from resnet_bench.version import __version__

__all__ = [
    "BadInputError", "Cost", "Profile", "ResNet", "ResNetSpec", "SpecError", "Speed", "__version__", "build_model",
    "count_cost", "measure_speed", "presets", "profile",
]

if TYPE_CHECKING:
    from resnet_bench.models import ResNet, build_model


def __getattr__(name: str) -> Any:
    if name in ("ResNet", "build_model"):
        from resnet_bench import models

        return getattr(models, name)
    raise AttributeError(f"module 'resnet_bench' has no attribute {name!r}")
