"""The shipped cost tables rebuilt, and a preset's cost on any images: `python -m resnet_bench.cost_tables` measures
every row of tables/preset_costs.csv and tables/reference_costs.csv again with fvcore (see preset_costs.py, which
reads them). Run it after changing a preset or a row of tables/published.csv; tests recompute every row.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

from resnet_bench import presets
from resnet_bench.preset_costs import COLUMNS, DATASET_GEOMETRY, REFERENCE_COLUMNS, REFERENCE_TABLE, TABLE, shipped_cost
from resnet_bench.profiling import count_cost
from resnet_bench.published import published_results


def compute_row(name: str) -> dict[str, Any]:
    """One row of the preset table, measured now with fvcore."""
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


def cost_on_images(model: str, *, in_channels: int, num_classes: int, input_size: int) -> dict[str, Any]:
    """Parameters and conv+linear GFLOPs of a preset built for these images (channels, classes, size in pixels):
    read from a shipped table where one measured exactly this network, else traced now (imports torch)."""
    shipped = shipped_cost(model, in_channels, num_classes, input_size)
    return shipped if shipped is not None else _measure(model, in_channels, num_classes, input_size)


def write_table(path: Path) -> None:
    """Measure every preset and write the preset table."""
    _write(path, COLUMNS, [compute_row(name) for name in presets.names()])


def write_reference_table(path: Path) -> None:
    """Measure every published row's preset on its data set's images and write the reference table."""

    _write(path, REFERENCE_COLUMNS, [compute_reference_row(r.model, r.dataset) for r in published_results()])


def _measure(model: str, in_channels: int, num_classes: int, input_size: int) -> dict[str, Any]:
    # Rounded as the tables store it, so a point reads the same whether it came from a table or a trace.
    spec = dataclasses.replace(presets.get(model), in_channels=in_channels, num_classes=num_classes)
    cost = count_cost(spec, input_size)
    return {"params": cost.params, "gflops": round(cost.gflops, 6)}


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
