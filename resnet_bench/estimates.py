"""Rung estimates: the value a trial reports at an early-stopping rung, as a guess of where it will end.

A rung reads a network in the middle of its schedule, near the peak learning rate, where its raw validation
accuracy ranks networks poorly against their final accuracy (README, "Rung estimates"). Each estimate is one row of
RUNG_ESTIMATES: what the trainer must measure for it, and how its value is read from the epochs trained so far
(TrainResult.history_rows(), as a trial record stores them). Higher is better for every one of them. Plain Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from resnet_bench.errors import BadInputError


class EstimateError(BadInputError):
    """An unknown rung estimate."""


@dataclass(frozen=True)
class RungEstimate:
    """One way to read a trial at a rung."""

    name: str
    needs: tuple[str, ...]  # what the trainer measures for it (train.TRAINER_ESTIMATES)
    read: Callable[[Sequence[dict[str, Any]]], float]  # from the history so far, higher is better
    about: str  # one line for the docs and the help


def _last(field: str) -> Callable[[Sequence[dict[str, Any]]], float]:
    def read(history: Sequence[dict[str, Any]]) -> float:
        value = history[-1].get(field)
        if value is None:
            raise ValueError(f"epoch {history[-1].get('epoch')} did not measure {field}")
        return float(value)

    return read


def _negative_loss_sum(history: Sequence[dict[str, Any]]) -> float:
    # Ru et al. 2021 (Speedy Performance Estimation, arXiv 2006.04492): the sum of the training losses so far ranks
    # networks by how fast they learn; negated, so that higher is better like an accuracy.
    return -sum(float(h["train_loss"]) for h in history)


RUNG_ESTIMATES: dict[str, RungEstimate] = {e.name: e for e in (
    RungEstimate("val_accuracy", (), _last("val_accuracy"), "the validation accuracy after the rung's epoch"),
    RungEstimate("ema", ("ema",), _last("ema_val_accuracy"),
                 "the validation accuracy of an exponential moving average of the weights (evaluation only)"),
    RungEstimate("probe", ("probe",), _last("probe_val_accuracy"),
                 "the validation accuracy after a short cooldown probe on a copy (0.2 epoch, lr to 0)"),
    RungEstimate("loss_sum", (), _negative_loss_sum, "minus the sum of the epochs' training losses so far"),
)}
DEFAULT_RUNG_ESTIMATE = "loss_sum"  # chosen on the recorded benchmark by the race at equal compute:
                                    # README, "Rung estimates"


def check_estimate(name: Any) -> str:
    """The name of a rung estimate, or EstimateError naming the accepted values."""
    if name not in RUNG_ESTIMATES:
        raise EstimateError(f"rung_estimate={name!r} is not accepted; use one of {', '.join(RUNG_ESTIMATES)}")
    return str(name)


def estimate_value(name: str, history: Sequence[dict[str, Any]]) -> float:
    """The estimate's value after the last epoch of `history` (dicts with EpochMetrics' fields)."""
    return RUNG_ESTIMATES[check_estimate(name)].read(history)


def trainer_needs(name: str) -> tuple[str, ...]:
    """What the trainer must measure for this estimate."""
    return RUNG_ESTIMATES[check_estimate(name)].needs


def extra_seconds(name: str, epoch: dict[str, Any]) -> float:
    """The seconds the estimate added to an epoch that measured it (the probe's training and evaluation, the EMA's
    evaluation); 0 for the estimates read from what every epoch measures."""
    return sum(float(epoch.get(f"{need}_seconds") or 0.0) for need in trainer_needs(name))
