"""The cost of every preset at its native input size, shipped as a table so that `resnet-bench models` is instant.

Rebuild the table after changing a preset: `python -m resnet_bench.preset_costs`; a test recomputes
every row with fvcore, so the table cannot drift from the generator.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources
from pathlib import Path
from typing import Any

from resnet_bench import presets

TABLE = "tables/preset_costs.csv"
COLUMNS = ("name", "family", "input_size", "params", "gflops", "gflops_total", "activations")


def compute_row(name: str) -> dict[str, Any]:
    """One row of the table, measured now with fvcore."""
    from resnet_bench.profiling import count_cost

    cost = count_cost(name)
    return {
        "name": name, "family": presets.family(name), "input_size": cost.input_size, "params": cost.params,
        "gflops": round(cost.gflops, 6), "gflops_total": round(cost.gflops_total, 6),
        "activations": cost.activations,
    }


@functools.cache
def preset_costs() -> dict[str, dict[str, Any]]:
    """The shipped table: preset name -> row."""
    text = resources.files("resnet_bench").joinpath(TABLE).read_text(encoding="utf-8")
    rows = {}
    for row in csv.DictReader(text.splitlines()):
        for key in ("input_size", "params", "activations"):
            row[key] = int(row[key])
        for key in ("gflops", "gflops_total"):
            row[key] = float(row[key])
        rows[row["name"]] = row
    return rows


def write_table(path: Path) -> None:
    """Measure every preset and write the table."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for name in presets.names():
            writer.writerow(compute_row(name))


if __name__ == "__main__":
    write_table(Path(__file__).parent / TABLE)
