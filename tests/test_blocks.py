"""The generator's choices, each visible in the built network: shortcuts, stride placement, pre-activation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import resnet_bench as rb
from resnet_bench.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut
from resnet_bench.spec import ResNetSpec

CIFAR = dict(stem="cifar", stem_width=16, num_classes=10)


def blocks_of(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck))]


def test_option_a_subsamples_and_pads_zero_channels():
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    out = shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2])
    assert not out[:, 16:].any()
    assert not list(shortcut.parameters())


@pytest.mark.parametrize(
    "shortcut, projections",
    [("A", 0), ("B", 2), ("C", 9), ("none", 0)],
)
def test_shortcut_types_on_resnet20(shortcut, projections):
    model = rb.build_model(ResNetSpec(layers=(3, 3, 3), shortcut=shortcut, **CIFAR))
    blocks = blocks_of(model)
    projected = [b for b in blocks if isinstance(b.downsample, nn.Sequential)]
    padded = [b for b in blocks if isinstance(b.downsample, ZeroPadShortcut)]
    assert len(projected) == projections
    assert len(padded) == (2 if shortcut == "A" else 0)
    assert all(b.residual == (shortcut != "none") for b in blocks)


def test_a_plain_block_adds_nothing():
    torch.manual_seed(0)
    x = torch.rand(1, 16, 8, 8)
    for residual, expected in ((True, torch.relu(x)), (False, torch.zeros_like(x))):
        block = BasicBlock(16, 16, stride=1, downsample=None, residual=residual, dropout=0.0).eval()
        nn.init.zeros_(block.conv2.weight)  # the branch now outputs exactly zero
        torch.testing.assert_close(block(x), expected)


def _flops(model: nn.Module, size: int) -> int:
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops()


def test_stride_on_1x1_has_the_same_parameters_and_fewer_flops():
    v15 = rb.build_model(ResNetSpec(block="bottleneck", layers=(1, 1), stride_on="3x3"))
    paper = rb.build_model(ResNetSpec(block="bottleneck", layers=(1, 1), stride_on="1x1"))
    second = blocks_of(paper)[1]
    assert second.conv1.stride == (2, 2) and second.conv2.stride == (1, 1)
    assert blocks_of(v15)[1].conv1.stride == (1, 1) and blocks_of(v15)[1].conv2.stride == (2, 2)
    assert sum(p.numel() for p in v15.parameters()) == sum(p.numel() for p in paper.parameters())
    # The strided 1x1 sees 4x fewer positions; everything else is the same.
    block_in, inner, positions = 256, 128, 28 * 28  # stage 2 of a 224 input: 56x56 -> 28x28
    assert _flops(v15, 224) - _flops(paper, 224) == 2 * block_in * inner * (4 * positions - positions)


def test_a_bottleneck_without_stride_on_strides_in_its_3x3_conv():
    # stride_on stays None in the spec; the model reads the resolved `strided_conv` (torchvision's v1.5).
    spec = ResNetSpec(block="bottleneck", layers=(1, 1))
    assert spec.stride_on is None and spec.strided_conv == "3x3"
    second = blocks_of(rb.build_model(spec))[1]
    assert second.conv1.stride == (1, 1) and second.conv2.stride == (2, 2)
    preact = blocks_of(rb.build_model(ResNetSpec(block="preact_bottleneck", layers=(1, 1))))[1]
    assert preact.conv1.stride == (1, 1) and preact.conv2.stride == (2, 2)


def test_preact_projection_sees_the_preactivated_input():
    torch.manual_seed(0)
    block = PreActBasicBlock(
        16, 32, stride=2, downsample=nn.Sequential(nn.Conv2d(16, 32, 1, 2, bias=False)), residual=True, dropout=0.0
    ).eval()
    seen = []
    block.downsample.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    x = torch.randn(2, 16, 8, 8)
    block(x)
    torch.testing.assert_close(seen[0], torch.relu(block.bn1(x)))


def test_preact_projection_has_no_bn_and_the_net_ends_in_bn_relu():
    model = rb.build_model("wrn16_8")
    projection = blocks_of(model)[0].downsample
    assert [type(m) for m in projection] == [nn.Conv2d]  # 16 -> 128 channels even in stage 1 (k > 1)
    assert isinstance(model.final_bn, nn.BatchNorm2d) and model.final_bn.num_features == 512
    assert isinstance(model.bn1, nn.Identity)  # the stem is a conv alone, as WRN's code
    assert rb.build_model("resnet20").final_bn is None


def test_dropout_sits_in_every_block():
    model = rb.build_model(ResNetSpec(block="preact_basic", layers=(2, 2), dropout=0.3, **CIFAR))
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 4 and all(d.p == 0.3 for d in drops)
    assert not [m for m in rb.build_model("wrn16_8").modules() if isinstance(m, nn.Dropout)]


def test_zero_init_residual_makes_each_block_start_as_identity():
    model = rb.build_model(ResNetSpec(layers=(2,), stem="cifar", zero_init_residual=True)).eval()
    block = blocks_of(model)[1]
    x = torch.rand(1, 64, 8, 8)
    torch.testing.assert_close(block(x), x)


def test_grey_input_and_any_number_of_stages():
    spec = ResNetSpec(layers=(1, 1, 1, 1, 1), in_channels=1, num_classes=3, stem="cifar", stem_width=8)
    model = rb.build_model(spec)
    assert model.conv1.weight.shape == (8, 1, 3, 3)
    assert model.forward_features(torch.randn(2, 1, 32, 32)).shape == (2, 128, 2, 2)  # 32 / 2**4
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert model.stage_names == ["layer1", "layer2", "layer3", "layer4", "layer5"]


def test_imagenet_stem_quarters_the_resolution():
    model = rb.build_model(ResNetSpec(layers=(1,)))
    assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 64, 16, 16)


def test_grouped_bottleneck_uses_torchvision_inner_width():
    model = rb.build_model("resnext29_8x64d")
    first = blocks_of(model)[0]
    assert first.conv2.groups == 8 and first.conv2.in_channels == 512 and first.conv3.out_channels == 256
