"""The dry run: sample a study's space at random and count each candidate's cost, training nothing (what
`resnet-bench sweep --dry-run` prints)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from resnet_bench.data import load_dataset
from resnet_bench.errors import BadInputError
from resnet_bench.profiling import count_on_meta
from resnet_bench.search.config import StudyConfig, constraint_values
from resnet_bench.search.space import architecture_count, recipe_count, sample_spec, space_size
from resnet_bench.spec import SpecError
from resnet_bench.train import spec_for_data

UNMEASURED_BEFORE_TRAINING = ("max_latency_ms",)  # bounds the dry run cannot check without timing each network


@dataclass(frozen=True)
class DryRun:
    """What a space holds, without training anything."""

    space_size: float  # distinct candidates; inf when a float range is continuous
    architectures: float  # distinct networks (inf: a continuous dropout range)
    recipes: float  # distinct recipes (inf: a continuous range, such as lr)
    samples: int  # candidates sampled at random
    invalid: int  # combinations the generator refuses
    feasible: int  # candidates inside the constraints it checked (an upper bound while `unchecked` is not empty)
    gflops_range: tuple[float, float] | None  # min and max over valid samples
    params_range: tuple[int, int] | None  # min and max over valid samples
    feasible_gflops_range: tuple[float, float] | None  # min and max over feasible samples
    feasible_params_range: tuple[int, int] | None
    unchecked: tuple[str, ...] = ()  # the study's bounds the dry run cannot check without measuring (max_latency_ms)


def dry_run(config: StudyConfig, samples: int = 100, on_sample: Callable[[int], None] | None = None) -> DryRun:
    """Sample candidates at random and count their cost: the share inside the constraints, and its range.

    Latency is not measured here (each candidate would have to run, alone on its device): a `max_latency_ms`
    bound is listed in `unchecked`, and the share inside the constraints is then an upper bound.
    """
    dataset = load_dataset(config.dataset, image_size=config.image_size)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=config.seed),
                                directions=[o.direction for o in config.objectives])
    valid, feasible, invalid = [], [], 0
    for i in range(samples):
        if on_sample is not None:
            on_sample(i)
        trial = study.ask()
        try:
            spec = spec_for_data(sample_spec(trial, config), dataset)
        except (SpecError, BadInputError):
            invalid += 1
            continue
        cost = count_on_meta(spec, dataset.image_size)  # no weights: a billion-parameter candidate costs nothing
        valid.append(cost)
        measured = {"gflops": cost.gflops, "params": cost.params, "activations": cost.activations}  # no latency
        if all(v <= 0 for v in constraint_values(config, measured).values()):
            feasible.append(cost)

    def span(costs: list[Any], attr: str) -> Any:
        return (min(getattr(c, attr) for c in costs), max(getattr(c, attr) for c in costs)) if costs else None

    return DryRun(
        space_size=space_size(config), architectures=architecture_count(config), recipes=recipe_count(config),
        samples=samples, invalid=invalid, feasible=len(feasible),
        gflops_range=span(valid, "gflops"), params_range=span(valid, "params"),
        feasible_gflops_range=span(feasible, "gflops"), feasible_params_range=span(feasible, "params"),
        unchecked=tuple(k for k in UNMEASURED_BEFORE_TRAINING if k in config.constraints),
    )
