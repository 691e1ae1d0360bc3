"""Published error rates of the presets, with their sources: the table that `models` and the report read."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class PublishedResult:
    """One published test error of one preset on one data set."""

    model: str  # preset name
    dataset: str  # imagenet, cifar10, cifar100 or fashion-mnist
    error_pct: float  # top-1 test error in percent
    params_printed: str  # parameter count as the source prints it ("0.27M"), or "" where it prints none
    source: str  # paper or publisher
    location: str  # table or page within the source
    notes: str  # runs, preprocessing, caveats


@functools.cache
def published_results() -> tuple[PublishedResult, ...]:
    """Every row of the package's table of published errors."""
    text = resources.files("resnet_bench").joinpath("tables/published.csv").read_text(encoding="utf-8")
    return tuple(
        PublishedResult(**{**row, "error_pct": float(row["error_pct"])}) for row in csv.DictReader(text.splitlines())
    )


def published_for(model: str, dataset: str | None = None) -> list[PublishedResult]:
    """The published results of one preset, optionally on one data set."""
    return [r for r in published_results() if r.model == model and (dataset is None or r.dataset == dataset)]
