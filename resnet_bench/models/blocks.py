"""Residual blocks: post-activation (He et al. 2015) and pre-activation (He et al. 2016), any shortcut.

Attribute names follow torchvision's `BasicBlock` and `Bottleneck` (conv1, bn1, ..., downsample), and timm's for
what torchvision lacks (se, drop_path), so a torchvision or timm state_dict loads into the post-activation blocks
unchanged.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BN follows or precedes it)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015: identity, subsampled by the stride, extra channels zero-padded. No parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, pad: str = "after") -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels
        # after: the new channels follow the old ones, as fb.resnet.torch's shortcutType 'A' concatenates zeros.
        # both: half before, half after, as the CIFAR reimplementation (akamaster/pytorch_resnet_cifar10) pads
        # planes // 4 on each side where a stage doubles the channels.
        self.before = self.extra_channels // 2 if pad == "both" else 0
        self.after = self.extra_channels - self.before

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after)) if self.extra_channels else x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, before={self.before}, after={self.after}"


def se_channels(channels: int, ratio: float) -> int:
    """The hidden width of a squeeze-and-excitation on `channels`: timm's make_divisible(channels * ratio, 8,
    round_limit=0), the nearest multiple of 8 and at least 8; 0 when ratio is 0 (no SE)."""
    if not ratio:
        return 0
    return max(8, int(channels * ratio + 4) // 8 * 8)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): global mean, 1x1 conv, ReLU, 1x1 conv, sigmoid, channel scale.

    Names and layout follow timm's SEModule (fc1, bn, act, fc2, gate; both convs with bias), so its weights load.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.bn = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.act(self.bn(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * self.gate(scale)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016) on a residual branch: in training, each sample's branch is zeroed with
    probability p and the kept ones scaled by 1/(1-p), as timm's DropPath; the identity in evaluation."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p:.4g}"


def _branch_end(channels: int, se_hidden: int, drop_path: float) -> tuple[nn.Module | None, nn.Module | None]:
    """The SE and the stochastic depth that end a residual branch (None where off, as timm leaves them)."""
    return (SqueezeExcite(channels, se_hidden) if se_hidden else None,
            DropPath(drop_path) if drop_path > 0 else None)


def _finish_branch(block: nn.Module, out: Tensor) -> Tensor:
    # timm's order: SE on the branch's last BN (or conv), then stochastic depth, then the addition.
    if block.se is not None:
        out = block.se(out)
    if block.drop_path is not None:
        out = block.drop_path(out)
    return out


class BasicBlock(nn.Module):
    """Two 3x3 convs, each followed by BN; ReLU after the addition (He et al. 2015, Fig. 2)."""

    def __init__(
        self, in_channels: int, planes: int, *, stride: int, downsample: nn.Module | None, residual: bool,
        dropout: float, se_hidden: int = 0, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se, self.drop_path = _branch_end(planes, se_hidden, drop_path)
        self.downsample = downsample
        self.residual = residual

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN that ends the residual branch."""
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = _finish_branch(self, self.bn2(self.conv2(self.drop(out))))
        if self.residual:
            out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, grouped 3x3, 1x1 expand, each followed by BN (He et al. 2015 Fig. 5; Xie et al. 2017)."""

    def __init__(
        self, in_channels: int, planes: int, *, stride: int, downsample: nn.Module | None, residual: bool,
        dropout: float, inner: int, groups: int, stride_on_3x3: bool, se_hidden: int = 0, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        # torchvision ("v1.5") strides in the 3x3 conv; the paper and its authors' code in the first 1x1.
        self.conv1 = conv1x1(in_channels, inner, 1 if stride_on_3x3 else stride)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = conv3x3(inner, inner, stride if stride_on_3x3 else 1, groups)
        self.bn2 = nn.BatchNorm2d(inner)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv3 = conv1x1(inner, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.se, self.drop_path = _branch_end(planes * 4, se_hidden, drop_path)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN that ends the residual branch."""
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = _finish_branch(self, self.bn3(self.conv3(self.drop(out))))
        if self.residual:
            out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv twice, nothing after the addition (He et al. 2016, Fig. 1b; the block of WRN)."""

    def __init__(
        self, in_channels: int, planes: int, *, stride: int, downsample: nn.Module | None, residual: bool,
        dropout: float, se_hidden: int = 0, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.se, self.drop_path = _branch_end(planes, se_hidden, drop_path)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = _finish_branch(self, self.conv2(self.drop(self.relu(self.bn2(out)))))
        if self.residual:
            out = out + _preact_shortcut(self.downsample, x, pre)
        return out


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv three times (1x1, 3x3, 1x1), nothing after the addition (He et al. 2016)."""

    def __init__(
        self, in_channels: int, planes: int, *, stride: int, downsample: nn.Module | None, residual: bool,
        dropout: float, inner: int, groups: int, stride_on_3x3: bool, se_hidden: int = 0, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, inner, 1 if stride_on_3x3 else stride)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv2 = conv3x3(inner, inner, stride if stride_on_3x3 else 1, groups)
        self.bn3 = nn.BatchNorm2d(inner)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv3 = conv1x1(inner, planes * 4)
        self.se, self.drop_path = _branch_end(planes * 4, se_hidden, drop_path)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = _finish_branch(self, self.conv3(self.drop(self.relu(self.bn3(out)))))
        if self.residual:
            out = out + _preact_shortcut(self.downsample, x, pre)
        return out


def _preact_shortcut(downsample: nn.Module | None, x: Tensor, pre: Tensor) -> Tensor:
    # A projection sees the pre-activated input, as in the authors' code (He et al. 2016,
    # resnet-1k-layers; Zagoruyko & Komodakis 2016); the identity and option A see the raw input.
    if downsample is None:
        return x
    return downsample(x if isinstance(downsample, ZeroPadShortcut) else pre)

