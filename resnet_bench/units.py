"""Numbers and counts as people read them, in every command's output: units, thousands separators, plurals.

Plain Python: the sweep's messages, the report and the command line share these.
"""

from __future__ import annotations

import math
from typing import Any

# How a cost metric reads after a number, and whether it counts things (fewer) or measures an amount (less).
_UNITS = {"gflops": "GFLOPs", "params": "params", "activations": "activations", "latency_ms": "ms latency",
          "train_seconds": "s of training"}
_COUNTED = ("gflops", "params", "activations")
_AMOUNTS = {"latency_ms": "latency", "train_seconds": "training time"}


def plural(count: int, word: str, words: str | None = None) -> str:
    """'1 network', '2 networks' ('1 epoch', '6 epochs'); `words` for an irregular plural."""
    return f"{count:,} {word if count == 1 else words or word + 's'}"


def metric_value(metric: str, value: Any) -> str:
    """A metric's value without its unit: 902,106 for counts, 0.0101 for the rest (four significant digits)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    if metric in ("params", "activations"):
        return f"{int(value):,}"
    return f"{float(value):.4g}"


def gflops_cell(value: float) -> str:
    """GFLOPs in a table's column, in every table alike: four decimals (0.0406, 4.2305), so that a CIFAR network
    keeps three significant digits and the column's points align. Prose reads metric_value instead."""
    return f"{float(value):.4f}"


def cost_text(metric: str, value: Any) -> str:
    """A cost as people read it: 38,266 params, 0.0101 GFLOPs, 12.3 ms latency."""
    return f"{metric_value(metric, value)} {_UNITS.get(metric, metric)}"


def saving_text(metric: str, ratio: float) -> str:
    """'3.16x fewer GFLOPs', '2x less latency': how much cheaper, by a ratio of costs."""
    if metric in _COUNTED:
        return f"{ratio:.3g}x fewer {_UNITS[metric]}"
    return f"{ratio:.3g}x less {_AMOUNTS.get(metric, metric)}"


def duration_text(seconds: float) -> str:
    """A duration as people say it: 45 s, 12 min, 1 h 05 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
