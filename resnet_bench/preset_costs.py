"""The cost of the presets, shipped as tables so that `resnet-bench models` and `resnet-bench report` never trace:
reading them. This module measures nothing and imports nothing that does (cost_tables.py rebuilds the tables).

`python -m resnet_bench.cost_tables` rebuilds both tables; run it after changing a preset or a row of
tables/published.csv:

- tables/preset_costs.csv: every preset at its native geometry (its own channels and classes, its stem's input
  size); `resnet-bench models` reads it.
- tables/reference_costs.csv: every row of tables/published.csv, the preset on that data set's images as the
  trainer sees them (DATASET_GEOMETRY); the report's published reference points read it, so the report
  imports no torch.

Tests recompute every row of both with fvcore, so neither table can drift from the generator.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources
from typing import Any

from resnet_bench import presets

TABLE = "tables/preset_costs.csv"
COLUMNS = ("name", "family", "input_size", "params", "gflops", "gflops_total", "activations")
REFERENCE_TABLE = "tables/reference_costs.csv"
REFERENCE_COLUMNS = ("model", "dataset", "in_channels", "num_classes", "input_size", "params", "gflops")

# (in_channels, num_classes, input_size in pixels) of each data set of tables/published.csv, as the trainer sees
# its images: train.spec_for_data sets a trial's channels and classes from the loaded data and the trial records
# the loaded image size, which is what the report reads back.
DATASET_GEOMETRY: dict[str, tuple[int, int, int]] = {
    "imagenet": (3, 1000, 224),  # torchvision's published accuracies: single 224x224 centre crop
    "cifar10": (3, 10, 32),  # data.py reads torchvision's 3x32x32 batches, no resizing
    "cifar100": (3, 100, 32),  # the same layout, 100 fine labels
    "fashion-mnist": (1, 10, 28),  # data.py reads the 28x28 grey idx files, no resizing
}


@functools.cache
def preset_costs() -> dict[str, dict[str, Any]]:
    """The shipped preset table: preset name -> row."""
    rows = {}
    for row in _read(TABLE):
        for key in ("input_size", "params", "activations"):
            row[key] = int(row[key])
        for key in ("gflops", "gflops_total"):
            row[key] = float(row[key])
        rows[row["name"]] = row
    return rows


@functools.cache
def reference_costs() -> dict[tuple[str, str], dict[str, Any]]:
    """The shipped reference table: (preset name, data set) -> row, in the order of tables/published.csv."""
    rows = {}
    for row in _read(REFERENCE_TABLE):
        for key in ("in_channels", "num_classes", "input_size", "params"):
            row[key] = int(row[key])
        row["gflops"] = float(row["gflops"])
        rows[row["model"], row["dataset"]] = row
    return rows


def shipped_cost(model: str, in_channels: int, num_classes: int, input_size: int) -> dict[str, Any] | None:
    """Parameters and GFLOPs of a preset on these images (channels, classes, size) from a shipped table, or None
    where no row measured exactly this network."""
    geometry = (in_channels, num_classes, input_size)
    for row in reference_costs().values():
        if row["model"] == model and (row["in_channels"], row["num_classes"], row["input_size"]) == geometry:
            return {"params": row["params"], "gflops": row["gflops"]}
    spec, native = presets.get(model), preset_costs().get(model)
    if native is not None and (spec.in_channels, spec.num_classes, native["input_size"]) == geometry:
        return {"params": native["params"], "gflops": native["gflops"]}
    return None


def _read(table: str) -> list[dict[str, Any]]:
    text = resources.files("resnet_bench").joinpath(table).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))
