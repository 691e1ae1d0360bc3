"""Accuracy is a measurement on a finite split: its 95% interval."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion (Wilson 1927; Brown, Cai and DasGupta 2001 recommend it):
    unlike the normal approximation it stays inside [0, 1] and is sound at 0% and 100%."""
    if total <= 0:
        raise ValueError(f"an interval needs at least one image, got total={total}")
    if not 0 <= correct <= total:
        raise ValueError(f"correct={correct} must lie in [0, total={total}]")
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
