"""Checkpoints: weights, spec, recipe, data split and metrics in one file that `torch.load(weights_only=True)` reads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resnet_bench.version import __version__
from resnet_bench.errors import BadInputError
from resnet_bench.files import atomic_path
from resnet_bench.recipe import Recipe
from resnet_bench.spec import ResNetSpec
from resnet_bench.train import TrainResult

FORMAT = "resnet-bench-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(BadInputError):
    """A file that is not a resnet-bench checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds."""

    spec: ResNetSpec
    recipe: Recipe
    dataset: str  # the data set's name
    val_size: int  # images in the validation split
    split_seed: int  # the seed that chose the validation split
    image_size: int  # input height = width the model was trained at
    metrics: dict[str, Any]  # the training result's flat row
    state_dict: dict[str, torch.Tensor]


def save_checkpoint(
    path: str | os.PathLike[str], model: torch.nn.Module, spec: ResNetSpec, result: TrainResult, *,
    dataset: str, val_size: int, split_seed: int, image_size: int,
) -> Path:
    """Write a checkpoint atomically (a temporary file, then a rename)."""
    path = Path(path)
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "resnet_bench_version": __version__,
        "spec": spec.to_dict(), "recipe": result.recipe.to_dict(), "dataset": dataset, "val_size": val_size,
        "split_seed": split_seed, "image_size": image_size, "metrics": result.to_row(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint with `weights_only=True`; anything else is a CheckpointError."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder; give the file that `resnet-bench train --save` "
                              "or a study's checkpoints/ holds (trial-N.pt)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle of other objects, a truncated file, not a zip: not ours either way
        raise CheckpointError(f"{path} is not a resnet-bench checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a resnet-bench checkpoint (saved by `resnet-bench train --save`)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {payload.get('format_version')!r}; this resnet-bench reads {FORMAT_VERSION}"
        )
    return Checkpoint(
        spec=ResNetSpec.from_dict(payload["spec"]), recipe=Recipe.from_dict(payload["recipe"]),
        dataset=payload["dataset"], val_size=payload["val_size"], split_seed=payload["split_seed"],
        image_size=payload["image_size"], metrics=payload["metrics"], state_dict=payload["state_dict"],
    )
