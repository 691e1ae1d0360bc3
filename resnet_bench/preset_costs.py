"""The cost of the presets, shipped as tables so that `resnet-bench models` and `resnet-bench report` never trace.

`python -m resnet_bench.preset_costs` rebuilds both tables; run it after changing a preset or a row of
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
import dataclasses
import functools
from importlib import resources
from pathlib import Path
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


def compute_row(name: str) -> dict[str, Any]:
    """One row of the preset table, measured now with fvcore."""
    from resnet_bench.profiling import count_cost

    cost = count_cost(name)
    return {
        "name": name, "family": presets.family(name), "input_size": cost.input_size, "params": cost.params,
        "gflops": round(cost.gflops, 6), "gflops_total": round(cost.gflops_total, 6),
        "activations": cost.activations,
    }


def compute_reference_row(model: str, dataset: str) -> dict[str, Any]:
    """One row of the reference table: a preset on a published data set's images, measured now with fvcore."""
    in_channels, num_classes, input_size = DATASET_GEOMETRY[dataset]
    return {
        "model": model, "dataset": dataset, "in_channels": in_channels, "num_classes": num_classes,
        "input_size": input_size, **_measure(model, in_channels, num_classes, input_size),
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


def cost_on_images(model: str, *, in_channels: int, num_classes: int, input_size: int) -> dict[str, Any]:
    """Parameters and conv+linear GFLOPs of a preset built for these images (channels, classes, size in pixels):
    read from a shipped table where one measured exactly this network, else traced now (imports torch)."""
    shipped = _shipped_cost(model, in_channels, num_classes, input_size)
    return shipped if shipped is not None else _measure(model, in_channels, num_classes, input_size)


def write_table(path: Path) -> None:
    """Measure every preset and write the preset table."""
    _write(path, COLUMNS, [compute_row(name) for name in presets.names()])


def write_reference_table(path: Path) -> None:
    """Measure every published row's preset on its data set's images and write the reference table."""
    from resnet_bench.published import published_results

    _write(path, REFERENCE_COLUMNS, [compute_reference_row(r.model, r.dataset) for r in published_results()])


def _shipped_cost(model: str, in_channels: int, num_classes: int, input_size: int) -> dict[str, Any] | None:
    geometry = (in_channels, num_classes, input_size)
    for row in reference_costs().values():
        if row["model"] == model and (row["in_channels"], row["num_classes"], row["input_size"]) == geometry:
            return {"params": row["params"], "gflops": row["gflops"]}
    spec, native = presets.get(model), preset_costs().get(model)
    if native is not None and (spec.in_channels, spec.num_classes, native["input_size"]) == geometry:
        return {"params": native["params"], "gflops": native["gflops"]}
    return None


def _measure(model: str, in_channels: int, num_classes: int, input_size: int) -> dict[str, Any]:
    # Rounded as the tables store it, so a point reads the same whether it came from a table or a trace.
    from resnet_bench.profiling import count_cost

    spec = dataclasses.replace(presets.get(model), in_channels=in_channels, num_classes=num_classes)
    cost = count_cost(spec, input_size)
    return {"params": cost.params, "gflops": round(cost.gflops, 6)}


def _read(table: str) -> list[dict[str, Any]]:
    text = resources.files("resnet_bench").joinpath(table).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _write(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    # Rows are measured before the file is opened: a failed trace leaves the old table whole.
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    # One process for both: count_cost caches by spec and size, so a published row at its preset's native
    # geometry (imagenet, most of cifar10) reuses the preset table's trace.
    here = Path(__file__).parent
    write_table(here / TABLE)
    write_reference_table(here / REFERENCE_TABLE)
