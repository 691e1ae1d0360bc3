"""Layer responses of He et al. 2015 (§4.2, Figure 7): the standard deviation of each 3x3 layer's response over the
test set, in layer order and sorted by magnitude; residual functions respond less than plain layers.

A 3x3 layer's response is, as in the paper, the output of its batch norm: after the convolution and the BN,
before the addition of the shortcut and before the ReLU. For the stem's 3x3 convolution (the CIFAR stem) that is the
stem's BN. A pre-activation block has no BN after its convolutions; there the response is the 3x3 convolution's
output itself (before the addition). The standard deviation is over every value of the response (each image,
channel and position of the test set), the population's (divided by the count), accumulated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_bench.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from resnet_bench.data import DeviceBatches, load_dataset, split
from resnet_bench.devices import resolve_device
from resnet_bench.errors import BadInputError
from resnet_bench.files import atomic_path
from resnet_bench.models import build_model
from resnet_bench.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck

RESPONSE_COLUMNS = ("checkpoint", "network", "layer", "name", "std", "rank")


def response_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs are the 3x3 layers' responses, in the order the network computes them."""
    layers = []
    stem = getattr(model, "conv1", None)
    if isinstance(stem, nn.Conv2d) and stem.kernel_size == (3, 3) and isinstance(getattr(model, "bn1", None),
                                                                                  nn.BatchNorm2d):
        layers.append(("bn1", model.bn1))
    for name, block in model.named_modules():
        if isinstance(block, BasicBlock):
            layers += [(f"{name}.bn1", block.bn1), (f"{name}.bn2", block.bn2)]
        elif isinstance(block, Bottleneck):
            layers.append((f"{name}.bn2", block.bn2))
        elif isinstance(block, PreActBasicBlock):
            layers += [(f"{name}.conv1", block.conv1), (f"{name}.conv2", block.conv2)]
        elif isinstance(block, PreActBottleneck):
            layers.append((f"{name}.conv2", block.conv2))
    return layers


class _Moments:
    """Count, sum and sum of squares of every value a module outputs, in float64."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, torch.zeros((), dtype=torch.float64), torch.zeros((),
                                                                                                   dtype=torch.float64)

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        values = output.detach().to(torch.float64)  # before any in-place addition that follows
        self.count += values.numel()
        self.total += values.sum()
        self.squares += values.square().sum()

    def std(self) -> float:
        mean = self.total / self.count
        return float(torch.sqrt(torch.clamp(self.squares / self.count - mean * mean, min=0)))


@torch.no_grad()
def layer_responses(model: nn.Module, batches: Any) -> list[tuple[str, float]]:
    """(name, std) of each 3x3 layer's response over `batches` (images, labels), in eval mode, in float32."""
    model.eval()
    layers = response_layers(model)
    moments = [_Moments() for _ in layers]
    handles = [m.register_forward_hook(h) for (_, m), h in zip(layers, moments, strict=True)]
    try:
        for images, _ in batches:
            model(images)
    finally:
        for h in handles:
            h.remove()
    return [(name, m.std()) for (name, _), m in zip(layers, moments, strict=True)]


@dataclass
class Responses:
    """One checkpoint's layer responses."""

    checkpoint: str  # its path, as given
    network: str  # plain-20, ResNet-20, or the spec's one-line form
    spec: str
    dataset: str  # the data set its test set came from
    layers: list[tuple[str, float]]  # (module name, std), in layer order

    def rows(self) -> list[dict[str, Any]]:
        """One row per layer: its index from 1, name, std and rank by magnitude (1: the largest)."""
        ranks = {i: r + 1 for r, i in enumerate(sorted(range(len(self.layers)), key=lambda i: -self.layers[i][1]))}
        return [{"checkpoint": self.checkpoint, "network": self.network, "layer": i + 1, "name": name, "std": std,
                 "rank": ranks[i]} for i, (name, std) in enumerate(self.layers)]


def network_label(checkpoint: Checkpoint) -> str:
    """plain-d or ResNet-d for the paper's CIFAR nets, else the spec's one-line form."""
    spec = checkpoint.spec
    if spec.block == "basic" and spec.stem == "cifar" and spec.stem_width == 16 and len(spec.layers) == 3 \
            and len(set(spec.layers)) == 1 and spec.stage_widths == (16, 32, 64):
        depth = 6 * spec.layers[0] + 2
        if spec.shortcut == "none":
            return f"plain-{depth}"
        if spec.shortcut == "A":
            return f"ResNet-{depth}"
    return spec.format()


def load_model(path: str) -> tuple[Checkpoint, nn.Module]:
    """A checkpoint and its network with its weights; a state dict that does not fit the spec it carries is bad
    input."""

    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint.spec)
    try:
        model.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(f"{path}: its weights do not fit the network it names ({checkpoint.spec.format()}): "
                              f"{first}") from None
    if not response_layers(model):
        raise BadInputError(f"{path}: {checkpoint.spec.format()} has no 3x3 layer responses to measure")
    return checkpoint, model


def measure_responses(paths: list[str], *, dataset: str | None = None, device: str = "auto",
                      batch_size: int = 500) -> list[Responses]:
    """Each checkpoint's layer responses over the test set of its data set (or `dataset`, which every checkpoint
    must fit: the same image channels, size and classes)."""

    target = resolve_device(device)
    loaded = [load_model(p) for p in paths]
    results, cache = [], {}
    for path, (checkpoint, model) in zip(paths, loaded, strict=True):
        name = dataset or checkpoint.dataset
        spec = checkpoint.spec
        key = (name, checkpoint.image_size)  # an image folder decodes at the size the network was trained at
        if key not in cache:
            cache[key] = load_dataset(name, image_size=checkpoint.image_size)
        images = cache[key]
        if (images.in_channels, images.num_classes) != (spec.in_channels, spec.num_classes):
            raise BadInputError(
                f"{path}: its network takes {spec.in_channels}-channel images in {spec.num_classes} classes; "
                f"--dataset {name} has {images.in_channels}-channel images in {images.num_classes} classes: give a "
                f"data set of its kind ({checkpoint.dataset})")
        # Normalised as in training: by the training split's mean and std (its own split on its own data set).
        own = name == checkpoint.dataset
        data = split(images, val_size=checkpoint.val_size if own else min(checkpoint.val_size, len(images.train) // 5),
                     seed=checkpoint.split_seed)
        batches = DeviceBatches(data.test, batch_size=batch_size, device=target, mean=data.mean, std=data.std,
                                train=False)
        layers = layer_responses(model.to(target), batches)
        results.append(Responses(checkpoint=path, network=network_label(checkpoint), spec=spec.format(),
                                 dataset=data.dataset_name, layers=layers))
    return results


def figure(results: list[Responses]) -> Any:
    """Figure 7's two panels: std by layer index (top), and sorted by magnitude (bottom); one line per checkpoint."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    for i, r in enumerate(results):
        stds = [s for _, s in r.layers]
        style = "--" if r.network.startswith("plain") else "-"
        top.plot(range(1, len(stds) + 1), stds, style, marker=".", color=f"C{i}", label=r.network)
        bottom.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), style, marker=".", color=f"C{i}",
                    label=r.network)
    top.set_xlabel("layer index (original)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Standard deviation of the 3x3 layers' responses (after BN, before addition and ReLU), test set",
                 fontsize=10)
    return fig


def write_files(results: list[Responses], folder: Path) -> list[Path]:
    """responses.png and responses.csv, each written whole."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rows = [row for r in results for row in r.rows()]
    with atomic_path(folder / "responses.csv") as tmp:
        pd.DataFrame(rows, columns=list(RESPONSE_COLUMNS)).to_csv(tmp, index=False)
    with atomic_path(folder / "responses.png") as tmp:
        figure(results).savefig(tmp, format="png", dpi=144)
    return [folder / "responses.png", folder / "responses.csv"]


def check_paths(paths: list[str]) -> None:
    """Every checkpoint exists and reads as ours (before any is measured, and before the output folder is made)."""
    for p in paths:
        if not Path(p).is_file():
            raise CheckpointError(f"checkpoint {p!r} does not exist")
        load_checkpoint(p)  # a file of another program: CheckpointError, one line
