"""The generator's choices, each visible in the built network: shortcuts, stride placement, pre-activation, and the
modern tweaks (deep stem, average-pool projections, squeeze-and-excitation, stochastic depth)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import resnet_bench as rb
from resnet_bench.models.blocks import (
    BasicBlock,
    Bottleneck,
    DropPath,
    PreActBasicBlock,
    PreActBottleneck,
    SqueezeExcite,
    ZeroPadShortcut,
    se_channels,
)
from resnet_bench.profiling import count_on_meta
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


# -- option A with the zero channels on both sides ---------------------------------------------------------

class _CifarReferenceBlock(nn.Module):
    """The basic block of akamaster/pytorch_resnet_cifar10 (resnet.py, option 'A'), whose pretrained ResNet-20..1202
    weights are widely used: the shortcut pads planes // 4 zero channels on each side of the subsampled identity."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.planes = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4), "constant", 0)
        return F.relu(out)


def test_option_a_padded_on_both_sides_gives_the_cifar_reimplementations_outputs():
    torch.manual_seed(0)
    reference = _CifarReferenceBlock(16, 32, 2).eval()
    with torch.no_grad():
        for bn in (reference.bn1, reference.bn2):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.uniform_(0.5, 1.5)
    model = rb.build_model("resnet20,pad=both").eval()
    ours = model.layer2[0]
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert isinstance(ours.downsample, ZeroPadShortcut) and (ours.downsample.before, ours.downsample.after) == (8, 8)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
        after = rb.build_model("resnet20").eval().layer2[0]
        after.load_state_dict(reference.state_dict(), strict=True)
        assert not torch.allclose(after(x), reference(x))  # the same shapes, other outputs: the default differs
    # The shortcut alone: the identity sits in the middle channels.
    padded = ZeroPadShortcut(16, 32, stride=2, pad="both")(x)
    torch.testing.assert_close(padded[:, 8:24], x[:, :, ::2, ::2])
    assert not padded[:, :8].any() and not padded[:, 24:].any()
    assert count_on_meta("resnet20,pad=both") == count_on_meta("resnet20")


# -- deep stem, average-pool projections, squeeze-and-excitation ----------------------------------------------

def test_deep_stem_is_three_convs_and_quarters_the_resolution():
    model = rb.build_model(ResNetSpec(layers=(1,), stem="deep"))
    convs = [m for m in model.conv1 if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(3, 32, 2), (32, 32, 1), (32, 64, 1)]
    assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 64, 16, 16)
    tiered = rb.build_model(ResNetSpec(layers=(1,), stem="deep_tiered"))
    assert [m.out_channels for m in tiered.conv1 if isinstance(m, nn.Conv2d)] == [24, 32, 64]  # timm's 't' stem


def test_avgpool_projection_averages_then_convolves_at_stride_1():
    model = rb.build_model("resnet20_d")
    down = model.layer2[0].downsample
    assert isinstance(down[0], nn.AvgPool2d) and down[0].ceil_mode and not down[0].count_include_pad
    assert down[1].stride == (1, 1) and down[1].kernel_size == (1, 1) and isinstance(down[2], nn.BatchNorm2d)
    # Same parameters as the strided 1x1 conv; an odd input keeps its last row and column (ceil_mode).
    assert count_on_meta("resnet20_d").params == count_on_meta("resnet20_b").params
    assert rb.build_model("resnet20_d,layers=1-1")(torch.randn(1, 3, 15, 15)).shape == (1, 10)
    preact = rb.build_model("block=preact_basic,layers=1-1,stem=cifar,downsample=avgpool").layer2[0].downsample
    assert [type(m) for m in preact] == [nn.AvgPool2d, nn.Conv2d]  # a pre-activation projection has no BN


@pytest.mark.parametrize("channels, ratio, hidden", [(256, 1 / 16, 16), (2048, 1 / 16, 128), (64, 1 / 16, 8),
                                                     (16, 1 / 16, 8), (100, 0.25, 24), (96, 0.25, 24), (64, 0, 0)])
def test_se_width_is_rounded_as_timm_rounds(channels, ratio, hidden):
    from timm.layers import make_divisible

    assert se_channels(channels, ratio) == hidden
    if ratio:
        assert hidden == make_divisible(channels * ratio, 8, round_limit=0.0)


@pytest.mark.parametrize("block", ["basic", "bottleneck", "preact_basic", "preact_bottleneck"])
def test_se_ends_every_branch_and_scales_each_channel(block):
    model = rb.build_model(ResNetSpec(block=block, layers=(1, 2), se_ratio=0.25, **CIFAR)).eval()
    ses = [b.se for b in blocks_of(model)]
    assert all(isinstance(se, SqueezeExcite) for se in ses) and len(ses) == 3
    se = ses[0]
    x = torch.rand(2, se.fc1.in_channels, 4, 4)
    with torch.no_grad():
        scale = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
        torch.testing.assert_close(se(x), x * scale)
    assert all(b.se is None for b in blocks_of(rb.build_model("resnet20")))


# -- stochastic depth ---------------------------------------------------------------------------------------

def test_drop_path_changes_no_parameter_or_flop_count():
    for name in ("resnet20_b", "resnet50d", "preact_resnet164"):
        assert count_on_meta(f"{name},drop_path=0.3") == count_on_meta(name)


def test_drop_path_rises_linearly_over_the_blocks_of_the_net():
    model = rb.build_model("resnet20_b,drop_path=0.4")  # 9 blocks: 0, 0.05, ..., 0.4
    rates = [b.drop_path.p if b.drop_path is not None else 0.0 for b in blocks_of(model)]
    assert rates == pytest.approx([0.4 * i / 8 for i in range(9)]) and blocks_of(model)[0].drop_path is None
    assert rb.build_model(ResNetSpec(layers=(1,), stem="cifar", drop_path=0.4)).layer1[0].drop_path is None


def test_drop_path_is_the_identity_in_evaluation():
    torch.manual_seed(0)
    plain = rb.build_model("resnet20_b").eval()
    dropping = rb.build_model("resnet20_b,drop_path=0.9").eval()
    dropping.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dropping(x), plain(x), rtol=0, atol=0)


def test_in_training_drop_path_drops_whole_branches_of_some_samples():
    block = BasicBlock(16, 16, stride=1, downsample=None, residual=True, dropout=0.0, drop_path=0.5).train()
    branch = {}
    block.bn2.register_forward_hook(lambda _m, _i, out: branch.__setitem__("out", out.detach().clone()))
    x = torch.randn(32, 16, 4, 4)
    torch.manual_seed(0)
    out = block(x).detach()
    dropped = [i for i in range(32) if torch.equal(out[i], torch.relu(x[i]))]
    kept = [i for i in range(32) if i not in dropped]
    assert 4 <= len(dropped) <= 28  # 32 coin flips at 1/2, seeded
    for i in kept:  # a kept branch is scaled by 1 / (1 - p), so the expectation is the undropped block
        torch.testing.assert_close(out[i], torch.relu(2 * branch["out"][i] + x[i]))
    assert DropPath(0.5).eval()(x) is x
