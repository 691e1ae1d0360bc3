"""Every torchvision ResNet is a preset down to the last parameter: same keys, strict load, same outputs."""

from __future__ import annotations

import pytest
import torch
import torchvision

import resnet_bench as rb
from resnet_bench import presets
from resnet_bench.spec import ResNetSpec

# Construction alone takes seconds on 2 cores for these.
LARGE = {"resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in LARGE else []) for n in presets.names("torchvision")]
)
def test_torchvision_weights_load_strictly_and_give_the_same_outputs(name):
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name).eval()
    ours = rb.build_model(name).eval()
    expected = reference.state_dict()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in expected.items()]
    # torchvision's own random weights; BN scales, shifts and statistics made random (and positive,
    # for the variances), so that a BN applied in the wrong place shows.
    with torch.no_grad():
        for value in expected.values():
            if value.is_floating_point() and value.ndim == 1:
                value.uniform_(0.5, 1.5)
    ours.load_state_dict(expected, strict=True)
    reference.load_state_dict(expected, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
    assert sum(p.numel() for p in ours.parameters()) == torchvision.models.get_model_weights(name).DEFAULT.meta[
        "num_params"
    ]


def test_training_mode_matches_too():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=7, zero_init_residual=True)
    ours = rb.build_model(ResNetSpec(num_classes=7, zero_init_residual=True))
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(4, 3, 48, 48)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_zero_init_residual_zeroes_the_same_bns_as_torchvision():
    spec = ResNetSpec(block="bottleneck", layers=(3, 4, 6, 3), zero_init_residual=True)
    ours = rb.build_model(spec)
    reference = torchvision.models.resnet50(zero_init_residual=True)
    ours_zero = {k for k, v in ours.state_dict().items() if k.endswith("weight") and v.ndim == 1 and not v.any()}
    ref_zero = {k for k, v in reference.state_dict().items() if k.endswith("weight") and v.ndim == 1 and not v.any()}
    assert ours_zero == ref_zero and len(ours_zero) == 16  # bn3 of each of the 16 blocks
