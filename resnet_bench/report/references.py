"""Published results as reference points on the report's chart: the package's table of published errors, with the
cost of each preset on the study's images read from the shipped table tables/reference_costs.csv (measured by fvcore,
see preset_costs.py), so the report imports no torch; only a geometry that no published row has is traced."""

from __future__ import annotations

from typing import Any

import pandas as pd

from resnet_bench.cost_tables import cost_on_images
from resnet_bench.published import published_results
from resnet_bench.search.records import TRAINED, StudyTrials
from resnet_bench.spec import ResNetSpec

COLUMNS = ("model", "dataset", "accuracy", "error_pct", "params", "gflops", "source", "location", "notes")


def published_points(dataset: str, *, in_channels: int, num_classes: int, input_size: int) -> pd.DataFrame:
    """The published test errors of presets on this data set (exact name: the mini subset matches nothing), with
    the cost of each preset as our profiler measures it on this data set's images (channels, classes, size)."""
    rows: list[dict[str, Any]] = []
    for r in published_results():
        if r.dataset != dataset:
            continue
        cost = cost_on_images(r.model, in_channels=in_channels, num_classes=num_classes, input_size=input_size)
        rows.append({"model": r.model, "dataset": r.dataset, "accuracy": round(1 - r.error_pct / 100, 6),
                     "error_pct": r.error_pct, "params": cost["params"], "gflops": cost["gflops"],
                     "source": r.source, "location": r.location, "notes": r.notes})
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def published_points_for(study: StudyTrials) -> pd.DataFrame:
    """The published points of a study's data set, measured on the images its trials trained on (channels and
    classes from a trained trial's spec, its input size); none while no trial is trained."""

    trained = study.trials[(study.trials["status"] == TRAINED) & study.trials["spec"].notna()]
    if trained.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    first = trained.iloc[0]
    spec = ResNetSpec.parse(first["spec"])
    return published_points(study.dataset, in_channels=spec.in_channels, num_classes=spec.num_classes,
                            input_size=int(first["input_size"]))

