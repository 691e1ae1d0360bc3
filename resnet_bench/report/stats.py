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


def mcnemar_exact(a_correct: object, b_correct: object) -> float:
    """Two-sided p-value of McNemar's exact test on two networks' per-image correctness over the same images.

    Only the images where they disagree count: b where the first is right and the second wrong, c the other
    way. Under the hypothesis that both are equally accurate, b is Binomial(b + c, 1/2); the p-value is twice
    the smaller tail, at most 1 (McNemar 1947; the exact form is the one Dietterich 1998 recommends for
    comparing classifiers). Two networks that never disagree have p = 1.
    """
    import numpy as np

    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"the paired test needs two vectors over the same images, got shapes {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers, one rounding


def kendall_tau(x: object, y: object) -> float | None:
    """Kendall's tau-b rank correlation of two equally long sequences (ties counted as in Kendall 1945):
    (concordant - discordant) / sqrt((pairs not tied in x) (pairs not tied in y)); None when either sequence
    has fewer than two distinct values."""
    import numpy as np

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"tau needs two sequences of one length, got shapes {a.shape} and {b.shape}")
    i, j = np.triu_indices(len(a), k=1)
    sx, sy = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    untied_x, untied_y = int((sx != 0).sum()), int((sy != 0).sum())
    if untied_x == 0 or untied_y == 0:
        return None
    return float((sx * sy).sum() / math.sqrt(untied_x * untied_y))
