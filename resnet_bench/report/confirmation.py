"""What `confirm` measured, beside what the search measured: per network the mean and spread over seeds, the
confirmed front, and how well the search's ranking held (Kendall's tau)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from resnet_bench.pareto import pareto_ranks
from resnet_bench.report.stats import kendall_tau
from resnet_bench.search.records import StudyTrials, TrialRecord

# One row per confirmed network: the JSON contract of `confirm --format json` (plus the cost columns the report adds).
NETWORK_FIELDS = ("number", "spec", "search_val_accuracy", "val_accuracy_mean", "val_accuracy_std",
                  "test_accuracy_mean", "test_accuracy_std", "seeds", "epochs")


@dataclass(frozen=True)
class Confirmation:
    """The runs of the last `confirm` command, by network."""

    networks: pd.DataFrame  # NETWORK_FIELDS, baseline, the study's cost metrics, confirmed_front; by search front order
    kendall_tau: float | None  # search-time against confirmed (mean) validation accuracy; None for < 2 networks

    def to_dict(self) -> dict[str, Any]:
        """`{"kendall_tau", "networks": [...]}` in plain JSON values (a network's std is null with one seed)."""
        rows = [{k: _plain(row[k]) for k in NETWORK_FIELDS} for _, row in self.networks.iterrows()]
        return {"kendall_tau": self.kendall_tau, "networks": rows}


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return value
    if value is None or pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def confirmation(study: StudyTrials, runs: list[TrialRecord] | None = None) -> Confirmation | None:
    """Runs (default: those of the study's last `confirm` command) as a table by network; None when there are none."""
    runs = [r for r in (study.confirm_runs if runs is None else runs) if r.val_accuracy is not None]
    if not runs:
        return None
    frame = pd.DataFrame([vars(r) for r in runs])
    trials = study.trials.set_index("number")
    costs = [m for m, d in study.objectives if d == "minimize"]
    rows = []
    for number, group in frame.groupby("confirms", sort=False):
        trial = trials.loc[int(number)] if int(number) in trials.index else None
        rows.append({
            "number": int(number), "spec": group["spec"].iloc[0], "baseline": group["baseline"].iloc[0],
            "search_val_accuracy": None if trial is None else trial["val_accuracy"],
            "val_accuracy_mean": group["val_accuracy"].mean(), "val_accuracy_std": group["val_accuracy"].std(),
            "test_accuracy_mean": group["test_accuracy"].mean(), "test_accuracy_std": group["test_accuracy"].std(),
            "seeds": sorted(int(s) for s in group["seed"]), "epochs": int(group["epochs"].max()),
            **{m: None if trial is None else trial[m] for m in costs if m != "train_seconds"},
            **({"train_seconds": group["train_seconds"].mean()} if "train_seconds" in costs else {}),
        })
    networks = pd.DataFrame(rows)
    objectives = [("val_accuracy_mean" if m == "val_accuracy" else m, d) for m, d in study.objectives]
    measured = networks[[m for m, _ in objectives]].notna().all(axis=1)
    networks["confirmed_front"] = False
    if measured.any():
        points = networks.loc[measured, [m for m, _ in objectives]].to_numpy(dtype=float)
        networks.loc[measured, "confirmed_front"] = pareto_ranks(points, [d for _, d in objectives]) == 1
    cost = costs[0] if costs else "number"
    networks = networks.sort_values([cost, "number"]).reset_index(drop=True)
    paired = networks[networks["search_val_accuracy"].notna()]
    tau = kendall_tau(paired["search_val_accuracy"].astype(float), paired["val_accuracy_mean"]) if len(paired) > 1 \
        else None
    return Confirmation(networks=networks, kendall_tau=tau)
