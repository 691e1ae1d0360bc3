"""The generator: residual blocks and the network a `ResNetSpec` describes."""

from resnet_bench.models.resnet import ResNet, build_model

__all__ = ["ResNet", "build_model"]
