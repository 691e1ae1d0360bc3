"""`ResNet`, the network any `ResNetSpec` describes, and `build_model`."""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from resnet_bench.models.blocks import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    conv1x1,
    conv3x3,
    se_channels,
)
from resnet_bench.presets import resolve
from resnet_bench.spec import ResNetSpec


class ResNet(nn.Module):
    """Stem, stages `layer1..layerN` of residual blocks, global average pooling, linear classifier.

    For the torchvision presets the state_dict has torchvision's keys and shapes; for the timm presets, timm's.
    """

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.conv1 = _stem_convs(spec)
        # A pre-activation net leaves BN-ReLU to its first block (as WRN's code does); max-pooling
        # commutes with that BN-ReLU as long as the BN's scale is positive.
        self.bn1 = nn.Identity() if spec.is_preact else nn.BatchNorm2d(spec.stem_width)
        self.relu = nn.Identity() if spec.is_preact else nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if spec.stem == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.stage_names: list[str] = []
        channels = spec.stem_width
        index, total = 0, sum(spec.layers)
        for i, (blocks, planes) in enumerate(zip(spec.layers, spec.stage_widths)):
            stage = []
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                # Stochastic depth's linear rule (Huang et al. 2016), over the blocks of the whole net as timm.
                rate = spec.drop_path * index / (total - 1) if total > 1 else 0.0
                stage.append(_make_block(spec, i, channels, stride, rate))
                channels = planes * spec.expansion
                index += 1
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*stage))
            self.stage_names.append(name)

        # Pre-activation nets end with the BN-ReLU that their last block leaves out (He et al. 2016).
        self.final_bn = nn.BatchNorm2d(channels) if spec.is_preact else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, spec.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation: He normal (fan-out) convs, BN at 1 and 0, PyTorch's default linear."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.spec.zero_init_residual:
            # Each block starts as the identity: +0.2-0.3% top-1 on ImageNet (Goyal et al. 2017, arXiv 1706.02677).
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature map, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        if self.final_bn is not None:
            x = torch.relu(self.final_bn(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.forward_features(x))
        return self.fc(torch.flatten(x, 1))


def _stem_convs(spec: ResNetSpec) -> nn.Module:
    """The stem's convolutions: one (imagenet 7x7/2, cifar 3x3/1) or, for the deep stems, three 3x3 with BN-ReLU
    between them, laid out as timm's `conv1` Sequential (indices 0, 1, 3, 4, 6) so that its weights load."""
    if spec.stem == "imagenet":
        return nn.Conv2d(spec.in_channels, spec.stem_width, kernel_size=7, stride=2, padding=3, bias=False)
    if spec.stem == "cifar":
        return conv3x3(spec.in_channels, spec.stem_width)
    # timm's stem_width is half of ours (its stem outputs 2 * stem_width); tiered narrows the first conv to 3/4.
    half = spec.stem_width // 2
    first = 3 * (half // 4) if spec.stem == "deep_tiered" else half
    return nn.Sequential(
        conv3x3(spec.in_channels, first, stride=2), nn.BatchNorm2d(first), nn.ReLU(inplace=True),
        conv3x3(first, half), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
        conv3x3(half, spec.stem_width),
    )


def _make_block(spec: ResNetSpec, stage: int, in_channels: int, stride: int, drop_path: float) -> nn.Module:
    planes = spec.stage_widths[stage]
    out_channels = spec.stage_channels[stage]
    shape_changes = stride != 1 or in_channels != out_channels
    downsample: nn.Module | None = None
    if spec.shortcut == "A" and shape_changes:
        downsample = ZeroPadShortcut(in_channels, out_channels, stride, spec.pad)
    elif spec.shortcut == "C" or (spec.shortcut == "B" and shape_changes):
        # Post-activation: conv + BN, as torchvision. Pre-activation: the conv alone, on the
        # pre-activated input, as the authors' code of He et al. 2016 and of WRN.
        if spec.downsample == "avgpool":
            # ResNet-D (He et al. 2019): average, then a 1x1 conv that sees every pixel; timm's pool settings.
            pool = (nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1
                    else nn.Identity())
            proj = [pool, conv1x1(in_channels, out_channels)]
        else:
            proj = [conv1x1(in_channels, out_channels, stride)]
        if not spec.is_preact:
            proj.append(nn.BatchNorm2d(out_channels))
        downsample = nn.Sequential(*proj)
    common = dict(stride=stride, downsample=downsample, residual=spec.shortcut != "none", dropout=spec.dropout,
                  se_hidden=se_channels(out_channels, spec.se_ratio), drop_path=drop_path)
    if spec.is_bottleneck:
        bottleneck = dict(inner=spec.inner_widths[stage], groups=spec.groups, stride_on_3x3=spec.strided_conv == "3x3")
        cls = PreActBottleneck if spec.is_preact else Bottleneck
        return cls(in_channels, planes, **common, **bottleneck)
    cls = PreActBasicBlock if spec.is_preact else BasicBlock
    return cls(in_channels, planes, **common)


def build_model(model: ResNetSpec | str | os.PathLike[str]) -> ResNet:
    """The network of a spec, a preset name, a one-line spec or a path to a JSON spec."""

    return ResNet(resolve(model))
