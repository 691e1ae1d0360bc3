"""A sweep's early stopping, trial by trial: the epochs that judge a trial of a recipe, what the trainer measures for
them, and the judgement itself (the trial's objectives at the rung, its accuracy read by the study's rung estimate,
kept in its record; then MOASHA's decision over every trial stored at that rung, by any worker).

The rule is search/early_stopping.py's, which any Optuna study can use; this module is what a sweep adds to it: the
study file's settings, the rung estimate, and the record.
"""

from __future__ import annotations

import functools
from typing import Any

from resnet_bench.estimates import estimate_value, trainer_needs
from resnet_bench.recipe import Recipe
from resnet_bench.search.config import StudyConfig
from resnet_bench.search.early_stopping import MOASHA, rung_epochs
from resnet_bench.search.records import TrialRecord, store_record
from resnet_bench.train import TRAINER_ESTIMATES


class SweepRungs:
    """The study's early stopping as its sweep runs it (none when the study file turns it off)."""

    def __init__(self, config: StudyConfig) -> None:
        self.config = config

    @functools.cached_property
    def stopper(self) -> MOASHA:
        """The study's early stopping, as any Optuna study can use it (search/early_stopping.py)."""
        return MOASHA(min_epochs=self.config.min_epochs, reduction_factor=self.config.reduction_factor,
                      directions=[o.direction for o in self.config.objectives], rule=self.config.promotion,
                      brackets=self.config.brackets, seed=self.config.seed)

    def epochs(self, recipe: Recipe) -> tuple[int, ...]:
        """The epochs after which a trial of this recipe may be judged (none without early stopping)."""
        if self.config.early_stopping != "mo-asha":
            return ()
        return rung_epochs(self.config.min_epochs, self.config.reduction_factor, recipe.epochs)

    def estimates_to_measure(self, recipe: Recipe) -> tuple[tuple[str, ...], set[int] | None]:
        """What the trainer measures beside the epochs, and after which epochs (None: every one): every estimate
        after every epoch for a study that records them, else what the study's rung estimate needs at its rungs."""
        if self.config.record_estimates:
            return TRAINER_ESTIMATES, None
        return trainer_needs(self.config.rung_estimate), set(self.epochs(recipe))

    def judges(self, trial: Any, recipe: Recipe, epoch: int) -> bool:
        """Whether this trial is judged after this epoch: a rung of the recipe, and of the trial's bracket."""
        return epoch in self.epochs(recipe) and self.stopper.is_rung(epoch, trial)

    def goes_on(self, study: Any, trial: Any, record: TrialRecord, epoch: int, history: list[dict[str, Any]],
                train_seconds: float) -> bool:
        """Store this trial's objectives at the rung (its accuracy read by the study's rung estimate), then read the
        rung from the storage (every worker's trials as they are now) and decide (search/early_stopping.py)."""
        record.rung_estimate = self.config.rung_estimate
        measured = {**{o.metric: getattr(record, o.metric) for o in self.config.objectives},
                    "val_accuracy": estimate_value(self.config.rung_estimate, history),
                    "train_seconds": train_seconds}
        values = [float(measured[o.metric]) for o in self.config.objectives]
        record.rungs = {**(record.rungs or {}), str(epoch): values}
        store_record(trial, record)
        return not self.stopper.should_stop(study, trial, epoch, values)
