"""What MO-ASHA early stopping saves and what it costs: training seconds against the hypervolume of the front.

Records once, then replays. The recording trains N distinct networks sampled at random from the space of
`studies/quickstart_mo_asha.toml` (inside its constraints, as a sweep would propose them) and the study's
baselines, each for the study's full recipe (6 epochs), and keeps per epoch the validation accuracy and the
training seconds, with each network's GFLOPs and parameters, in a JSON file. The replay then needs no training:
for many random arrival orders of those networks it simulates the sweep's asynchronous rung decisions
(`resnet_bench.search.early_stopping.goes_on`, rungs after epochs 1 and 3, eta 3) with W simulated workers
and with one, and compares with training every network to the end:

- the training seconds with early stopping against without (the sum of every full curve's seconds);
- the hypervolume of the final front of the trials that trained the full budget (as the report computes it:
  a stopped trial is never on the front), from the study's reference point (val_accuracy 0, GFLOPs 0.05),
  as mean, min, max and standard deviation over the orders, against the one hypervolume without early
  stopping; and the share of orders whose front keeps the most accurate network.

The target: at least 2.5x less training for a hypervolume within the spread between seeds. The spread measured
here is that over arrival orders (each network is trained once, with the study's seed, so the spread between
training seeds is not); the table gives the gap (hypervolume without early stopping minus the mean with it) in
those standard deviations beside the ratio of training seconds.

    python benchmarks/mo_asha.py [--curves benchmarks/mo_asha_curves.json] [--candidates 27] [--threads 2]
                                 [--orders 200] [--workers 4] [--seed 0] [--out mo_asha.json]

The first run records (28 networks x 6 epochs: 57 min with --threads 1 on a busy 2-core CPU) unless the curves
file exists; every later run only replays it (seconds). Delete the file, or name another with --curves, to record again.

The simulation. Trial numbers follow the order in which trials start (the baselines first, as a sweep enqueues
them, then the sampled networks in the order drawn); a free worker takes the next trial; each epoch lasts its
recorded seconds; at a rung epoch the trial stores its point (the accuracy after that epoch, its GFLOPs) and
is judged against every point stored at that rung by then, in trial-number order, as `Sweep._goes_on` reads
them from the storage. A stopped trial keeps its rung's point, so later trials are judged against it too.
What it leaves out: the time outside training (evaluation, the storage, proposing), and that W workers on
one machine share it (every epoch takes the seconds it took alone).

Syne Tune side by side (when `pip install syne-tune` has been run; skipped otherwise): the same curves and
orders are fed to Syne Tune's `MOASHA` scheduler (syne_tune.optimizer.schedulers.multiobjective.moasha)
without its Tuner, as the Tuner drives it: `on_trial_add` when a trial starts, `on_trial_result` after every
epoch ({"epoch", objectives}), `on_trial_remove` when it answers STOP; grace period = min_epochs, reduction
factor = eta, max_t = the recipe's epochs, one bracket, non-dominated sorting with its epsilon-net (its
default). What differs from the sweep's decisions by design: Syne Tune takes one direction for all metrics
(`do_minimize`), so a maximised metric is fed negated (the same order and distances); it judges a trial from
the second arrival at a rung on (the sweep waits for eta arrivals), keeps it when its place / n <= 1 / eta
(floor(n / eta) + 1 of n go on, one more than the sweep's n // eta), and runs its epsilon-net on the raw values
(the sweep scales each objective to [0, 1] over the rung). Its Tuner polls the backend for results, so results
that land within one poll reach it together; here each reaches it alone, in simulated time order. A
second row, "syne-tune, ranks", runs the same scheduler with a priority that returns each point's place in
Syne Tune's own order: in version 0.16.0 `NonDominatedPriority` returns the order itself (the indices of the
points, best first), which `MOASHA` reads as the priority of each point, so its decisions need not follow the
order it computes (a point that dominates every other one at the rung can be stopped).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import heapq
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import optuna
import torch
from common import emit

from resnet_bench.data import Splits, load_dataset, split
from resnet_bench.errors import BadInputError
from resnet_bench.models import build_model
from resnet_bench.pareto import hypervolume, pareto_ranks
from resnet_bench.presets import get as get_preset
from resnet_bench.profiling import count_cost
from resnet_bench.recipe import Recipe
from resnet_bench.search.config import StudyConfig, load_study_file
from resnet_bench.search import replay as replay_module
from resnet_bench.search.early_stopping import rung_epochs
from resnet_bench.search.space import baseline_params, sample_recipe, sample_spec
from resnet_bench.search.config import constraint_values
from resnet_bench.spec import ResNetSpec, SpecError
from resnet_bench.train import EpochMetrics, spec_for_data, train

STUDY = "quickstart_mo_asha"
DEFAULT_CURVES = Path(__file__).resolve().parent / "mo_asha_curves.json"
MAX_PROPOSALS_PER_CANDIDATE = 50


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- recording: train every candidate to the end, once ---------------------------------------------------------

def machine() -> dict[str, Any]:
    """What the seconds were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": str(torch.__version__), "threads": torch.get_num_threads(),
            "device": "cpu"}


def propose(config: StudyConfig, data: Splits, n: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The baselines and n distinct feasible candidates drawn at random, as the sweep proposes and checks them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chosen: list[dict[str, Any]] = []
    counts = {"proposed": 0, "refused": 0, "infeasible": 0, "duplicates": 0}
    seen: set[tuple[str, str]] = set()

    def admit(spec: ResNetSpec, recipe: Recipe, baseline: str) -> None:
        cost = count_cost(spec, data.image_size)
        measured = {"gflops": cost.gflops, "params": cost.params, "activations": cost.activations}
        key = (spec.format(), json.dumps(recipe.to_dict(), sort_keys=True))
        if any(v > 0 for v in constraint_values(config, measured).values()):
            counts["infeasible"] += 1
            if baseline:
                log(f"baseline {baseline} is outside the constraints: not trained, as in the sweep")
        elif key in seen:
            counts["duplicates"] += 1
        else:
            seen.add(key)
            chosen.append({"baseline": baseline, "spec": spec.format(), "gflops": cost.gflops, "params": cost.params,
                           "recipe": recipe.to_dict(), "_spec": spec, "_recipe": recipe})

    for name in config.baselines:
        admit(spec_for_data(get_preset(name), data), config.base_recipe(), name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed),
                                directions=[o.direction for o in config.objectives])
    wanted = len(chosen) + n
    while len(chosen) < wanted and counts["proposed"] < MAX_PROPOSALS_PER_CANDIDATE * n:
        trial = study.ask()
        counts["proposed"] += 1
        try:
            recipe = sample_recipe(trial, config)
            spec = spec_for_data(sample_spec(trial, config), data)
        except (SpecError, BadInputError):  # a combination the generator refuses
            counts["refused"] += 1
            continue
        admit(spec, recipe, "")
    if len(chosen) < wanted:
        log(f"only {len(chosen) - len(config.baselines)} distinct feasible candidates in {counts['proposed']} draws")
    return chosen, counts


def train_curve(candidate: dict[str, Any], data: Splits, seed: int, label: str) -> dict[str, Any]:
    """Train one candidate for its whole recipe; the validation accuracy and training seconds of each epoch."""
    recipe: Recipe = candidate["_recipe"]
    history: list[EpochMetrics] = []

    def after_epoch(epoch: int, metrics: EpochMetrics) -> bool:
        history.append(metrics)
        log(f"{label} epoch {epoch}/{recipe.epochs}: val {metrics.val_accuracy:.4f}, {metrics.seconds:.1f} s")
        return False

    load_before = os.getloadavg()[0]
    torch.manual_seed(seed)
    result = train(build_model(candidate["_spec"]), data, recipe, "cpu", callback=after_epoch)
    kept = {k: v for k, v in candidate.items() if not k.startswith("_")}
    # The machine's 1-minute load average before and after: the seconds of a shared machine are only as good as it.
    return {**kept, "val_accuracy": [m.val_accuracy for m in history], "seconds": [m.seconds for m in history],
            "test_accuracy": result.test_accuracy, "load_average": [round(load_before, 2),
                                                                     round(os.getloadavg()[0], 2)]}


def record(path: Path, n: int, seed: int | None, threads: int) -> dict[str, Any]:
    """Train the baselines and n sampled candidates to the end and save their curves (resumes a partial file)."""
    torch.set_num_threads(threads)
    config = load_study_file(STUDY)
    sample_seed = config.seed if seed is None else seed
    data = split(load_dataset(config.dataset, image_size=config.image_size), val_size=config.val_size,
                 seed=config.seed)
    candidates, counts = propose(config, data, n, sample_seed)
    partial = path.with_name(path.name + ".partial")
    done: dict[str, dict[str, Any]] = {}
    if partial.is_file():
        done = {c["spec"]: c for c in json.loads(partial.read_text())["candidates"]}
        log(f"resuming {partial}: {len(done)} curves already recorded")
    recipe = candidates[0]["recipe"] if candidates else config.base_recipe().to_dict()
    curves: dict[str, Any] = {
        "study": STUDY, "dataset": config.dataset, "val_size": config.val_size, "seed": config.seed,
        "sample_seed": sample_seed, "recipe": recipe, "machine": machine(), "date": "", "selection": counts,
        "candidates": [],
    }
    started = time.perf_counter()
    for i, candidate in enumerate(candidates):
        label = f"[{i + 1}/{len(candidates)}] {candidate['baseline'] or candidate['spec']}"
        if candidate["spec"] in done:
            curves["candidates"].append(done[candidate["spec"]])
            continue
        log(f"{label}: {candidate['gflops']:.4f} GFLOPs, {candidate['params']} params")
        curves["candidates"].append(train_curve(candidate, data, config.seed, label))
        partial.write_text(json.dumps(curves, indent=1))
    curves["date"] = datetime.date.today().isoformat()
    curves["record_seconds"] = round(time.perf_counter() - started, 1)
    path.write_text(json.dumps(curves, indent=1))
    partial.unlink(missing_ok=True)
    log(f"recorded {len(candidates)} curves in {curves['record_seconds']:.0f} s: {path}")
    return curves


# -- replay: the rung decisions, simulated ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Curve:
    """One recorded network: accuracy and training seconds after each epoch, and its cost."""

    name: str
    val_accuracy: tuple[float, ...]
    seconds: tuple[float, ...]
    gflops: float
    params: int

    def point(self, epoch: int, metrics: Sequence[str]) -> list[float]:
        """The objectives' values after `epoch` epochs, in the study's order (what a trial stores at a rung)."""
        known = {"val_accuracy": self.val_accuracy[epoch - 1], "gflops": self.gflops, "params": float(self.params),
                 "train_seconds": sum(self.seconds[:epoch])}
        return [known[m] for m in metrics]


class Rule(Protocol):
    """An early-stopping rule fed the simulated events: a trial starts, a trial ends an epoch."""

    def add(self, trial: int) -> None: ...

    def result(self, trial: int, epoch: int, point: list[float]) -> bool:
        """True: the trial trains on."""
        ...


class NoStopping:
    def add(self, trial: int) -> None:
        pass

    def result(self, trial: int, epoch: int, point: list[float]) -> bool:
        return True


def searched_curves(data: dict[str, Any], config: StudyConfig) -> list[replay_module.Curve]:
    """The recorded curves as the search replay reads them: each network's place in the study's space."""
    return [replay_module.Curve(
        spec=c["spec"], params=baseline_params(ResNetSpec.parse(c["spec"]), config),
        metrics={"gflops": float(c["gflops"]), "params": float(c["params"])},
        history=tuple({"epoch": e + 1, "val_accuracy": v, "seconds": s, "train_loss": math.nan}
                      for e, (v, s) in enumerate(zip(c["val_accuracy"], c["seconds"], strict=True))),
    ) for c in data["candidates"]]


def sweep_run(curves: Sequence[replay_module.Curve], config: StudyConfig, order: Sequence[int], workers: int) -> Run:
    """One arrival order through the search replay, with the study's rungs and its raw validation accuracy."""
    result = replay_module.replay(curves, config, replay_module.ReplaySettings(
        sampler="random", workers=workers, order=tuple(order), max_trials=len(order),
        min_epochs=config.min_epochs, reduction_factor=config.reduction_factor, rung_estimate="val_accuracy",
        promotion="eta"))
    return Run(epochs=tuple(result.epochs[t] for t in range(len(order))), train_seconds=result.seconds,
               wall_seconds=result.wall_seconds)


@dataclasses.dataclass(frozen=True)
class Run:
    """One simulated sweep: epochs each trial trained (by trial number), its training seconds and wall time."""

    epochs: tuple[int, ...]
    train_seconds: float
    wall_seconds: float


def simulate(curves: Sequence[Curve], order: Sequence[int], workers: int, rule: Rule, metrics: Sequence[str],
             epochs: int) -> Run:
    """Event-driven: `workers` workers take the trials in `order` (trial number i trains curves[order[i]]) as they
    come free; each epoch lasts its recorded seconds; the rule sees each epoch's end in simulated time order."""
    trained = [0] * len(order)
    events: list[tuple[float, int, int]] = []  # (time the epoch ends, trial number, epoch)
    next_trial, train_seconds, wall = 0, 0.0, 0.0

    def start(now: float) -> None:
        nonlocal next_trial
        if next_trial < len(order):
            rule.add(next_trial)
            heapq.heappush(events, (now + curves[order[next_trial]].seconds[0], next_trial, 1))
            next_trial += 1

    for _ in range(workers):
        start(0.0)
    while events:
        now, trial, epoch = heapq.heappop(events)
        curve = curves[order[trial]]
        train_seconds += curve.seconds[epoch - 1]
        trained[trial] = epoch
        wall = now
        if rule.result(trial, epoch, curve.point(epoch, metrics)) and epoch < epochs:
            heapq.heappush(events, (now + curve.seconds[epoch], trial, epoch + 1))
        else:
            start(now)
    return Run(epochs=tuple(trained), train_seconds=train_seconds, wall_seconds=wall)


# -- Syne Tune's MOASHA, driven as its Tuner drives it ---------------------------------------------------------

def syne_tune_version() -> str | None:
    try:
        import importlib.metadata

        import syne_tune  # noqa: F401
        return importlib.metadata.version("syne-tune")
    except ImportError:
        return None


def syne_tune_rule(config: StudyConfig, epochs: int, ranks: bool) -> Callable[[], Rule]:
    """A factory of fresh Syne Tune MOASHA schedulers with the study's rungs and objectives; `ranks` swaps in a
    priority that returns each point's place in Syne Tune's own order (see the module's docstring)."""
    import logging

    import syne_tune.optimizer.schedulers.multiobjective.non_dominated_priority as ndp
    from syne_tune.backend.trial_status import Trial
    from syne_tune.optimizer.scheduler import SchedulerDecision
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import MOPriority

    logging.getLogger("syne_tune").setLevel(logging.WARNING)
    names = [o.metric if o.direction == "minimize" else f"negative_{o.metric}" for o in config.objectives]
    signs = [1.0 if o.direction == "minimize" else -1.0 for o in config.objectives]

    class RankPriority(MOPriority):
        """Syne Tune's non-dominated sorting and epsilon-net, returned as each point's rank (0 = best)."""

        def priority_unsafe(self, objectives: np.ndarray) -> np.ndarray:
            order: list[int] = []
            remaining = np.arange(len(objectives))
            while remaining.size:
                mask = ndp.pareto_efficient(objectives[remaining])
                front = remaining[mask]
                places = ndp.compute_epsilon_net(objectives[front], dim=0)  # the place of each point of the front
                order += front[np.argsort(places)].tolist()
                remaining = remaining[~mask]
            rank = np.empty(len(objectives), dtype=int)
            rank[order] = np.arange(len(objectives))
            return rank

    class SyneTuneRule:
        def __init__(self) -> None:
            self.scheduler = MOASHA(
                config_space={}, metrics=names, do_minimize=True, time_attr="epoch", max_t=epochs,
                grace_period=config.min_epochs, reduction_factor=config.reduction_factor, brackets=1,
                multiobjective_priority=RankPriority() if ranks else None, random_seed=0,
            )
            self.trials: dict[int, Any] = {}

        def add(self, trial: int) -> None:
            self.trials[trial] = Trial(trial_id=trial, config={}, creation_time=datetime.datetime.now())
            self.scheduler.on_trial_add(self.trials[trial])

        def result(self, trial: int, epoch: int, point: list[float]) -> bool:
            reported = {"epoch": epoch, **{n: s * v for n, s, v in zip(names, signs, point)}}
            decision = self.scheduler.on_trial_result(self.trials[trial], reported)
            if decision == SchedulerDecision.STOP:  # at max_t too: the Tuner then removes the trial
                self.scheduler.on_trial_remove(self.trials[trial])
                return False
            return True

    return SyneTuneRule


# -- figures ---------------------------------------------------------------------------------------------------

def load_curves(data: dict[str, Any]) -> list[Curve]:
    return [Curve(name=c["baseline"] or c["spec"], val_accuracy=tuple(c["val_accuracy"]), seconds=tuple(c["seconds"]),
                  gflops=float(c["gflops"]), params=int(c["params"])) for c in data["candidates"]]


def front_hypervolume(curves: Sequence[Curve], members: Sequence[int], metrics: Sequence[str],
                      directions: Sequence[str], reference: Sequence[float], epochs: int) -> float:
    return hypervolume([curves[i].point(epochs, metrics) for i in members] or np.zeros((0, len(metrics))),
                       reference, directions)


def summarise(runs: list[Run], baseline_runs: list[Run], orders: list[list[int]], curves: Sequence[Curve],
              metrics: Sequence[str], directions: Sequence[str], reference: Sequence[float], epochs: int,
              rungs: Sequence[int]) -> dict[str, Any]:
    """The figures of one rule over all orders."""
    everyone = range(len(curves))
    final = np.array([c.point(epochs, metrics) for c in curves])
    front = {int(i) for i in np.flatnonzero(pareto_ranks(final, directions) == 1)}
    accuracy = metrics.index("val_accuracy")
    best = max(everyone, key=lambda i: final[i, accuracy])
    seconds: list[float] = []
    ratios: list[float] = []
    walls: list[float] = []
    hvs: list[float] = []
    keeps: list[bool] = []
    top: list[float] = []
    kept_front: list[float] = []
    full: list[int] = []
    stopped: dict[int, list[int]] = {r: [] for r in rungs}
    for run, without, order in zip(runs, baseline_runs, orders):
        finished = [order[t] for t, e in enumerate(run.epochs) if e == epochs]
        seconds.append(run.train_seconds)
        ratios.append(without.train_seconds / run.train_seconds)
        walls.append(without.wall_seconds / run.wall_seconds)
        hvs.append(front_hypervolume(curves, finished, metrics, directions, reference, epochs))
        keeps.append(best in finished)
        top.append(max(final[i, accuracy] for i in finished))
        kept_front.append(len(front & set(finished)) / len(front))
        full.append(len(finished))
        for r in rungs:
            stopped[r].append(sum(e == r for e in run.epochs))
    return {
        "train_seconds": _stats(seconds), "train_seconds_ratio": _stats(ratios), "wall_seconds_ratio": _stats(walls),
        "hypervolume": _stats(hvs), "keeps_most_accurate": float(np.mean(keeps)),
        "best_full_budget_accuracy": _stats(top), "most_accurate": float(final[best, accuracy]),
        "front_kept": float(np.mean(kept_front)), "full_budget_trials": float(np.mean(full)),
        "stopped_at_rung": {str(r): float(np.mean(v)) for r, v in stopped.items()},
    }


def _stats(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "min": float(array.min()), "max": float(array.max()),
            "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def replay(data: dict[str, Any], n_orders: int, workers: int, seed: int) -> dict[str, Any]:
    config = load_study_file(STUDY)
    curves = load_curves(data)
    epochs = int(data["recipe"]["epochs"])
    metrics = [o.metric for o in config.objectives]
    directions = [o.direction for o in config.objectives]
    reference = [config.reference_point[m] for m in metrics]
    rungs = rung_epochs(config.min_epochs, config.reduction_factor, epochs)
    baselines = [i for i, c in enumerate(data["candidates"]) if c["baseline"]]
    sampled = [i for i, c in enumerate(data["candidates"]) if not c["baseline"]]
    generator = np.random.default_rng(seed)
    orders = [baselines + [sampled[j] for j in generator.permutation(len(sampled))] for _ in range(n_orders)]

    rules: dict[str, Callable[[], Rule]] = {}
    version = syne_tune_version()
    if version is None:
        print("Syne Tune side by side skipped: `import syne_tune` failed (pip install syne-tune to add it)")
    else:
        rules["syne-tune"] = syne_tune_rule(config, epochs, ranks=False)
        rules["syne-tune, ranks"] = syne_tune_rule(config, epochs, ranks=True)

    without_seconds = sum(sum(c.seconds) for c in curves)
    without_hv = front_hypervolume(curves, range(len(curves)), metrics, directions, reference, epochs)
    figures: dict[str, Any] = {
        "study": STUDY, "curves_machine": data["machine"], "curves_date": data["date"], "recipe": data["recipe"],
        "networks": len(curves), "baselines": [curves[i].name for i in baselines], "orders": n_orders, "seed": seed,
        "rungs": list(rungs), "reduction_factor": config.reduction_factor, "reference_point": reference,
        "without_early_stopping": {"train_seconds": without_seconds, "hypervolume": without_hv},
        "syne_tune_version": version, "rules": {},
    }
    searched = searched_curves(data, config)
    for w in sorted({1, workers}):
        full_runs = [simulate(curves, order, w, NoStopping(), metrics, epochs) for order in orders]
        # The sweep's own decisions: the search replayed (resnet_bench.search.replay) with the same MOASHA object
        # the sweep uses, on an in-memory Optuna study, each order enqueued.
        runs = [sweep_run(searched, config, order, w) for order in orders]
        figures["rules"][f"resnet_bench, {w} worker{'s' if w > 1 else ''}"] = summarise(
            runs, full_runs, orders, curves, metrics, directions, reference, epochs, rungs)
        for label, make in rules.items():
            runs = [simulate(curves, order, w, make(), metrics, epochs) for order in orders]
            figures["rules"][f"{label}, {w} worker{'s' if w > 1 else ''}"] = summarise(
                runs, full_runs, orders, curves, metrics, directions, reference, epochs, rungs)
    return figures


def print_table(figures: dict[str, Any]) -> None:
    recorded_on = figures["curves_machine"]
    without = figures["without_early_stopping"]
    print(f"curves: {figures['networks']} networks ({', '.join(figures['baselines'])} included), "
          f"{figures['recipe']['epochs']} epochs, recorded {figures['curves_date']} on {recorded_on['cpu']}, "
          f"{recorded_on['threads']} thread(s), torch {recorded_on['torch']}")
    print(f"rungs after epochs {figures['rungs']}, eta {figures['reduction_factor']}; {figures['orders']} arrival "
          f"orders (seed {figures['seed']}); syne-tune {figures['syne_tune_version'] or 'not installed'}")
    most_accurate = next(iter(figures["rules"].values()))["most_accurate"]
    print(f"without early stopping: {without['train_seconds']:.0f} s of training, hypervolume "
          f"{without['hypervolume']:.6f}, most accurate network {most_accurate:.4f}")
    header = (f"{'rule, workers':30s} {'train s':>8s} {'less training':>19s} {'wall':>6s} {'full':>5s} "
              f"{'hypervolume mean +- std [min, max]':>38s} {'gap':>7s} {'gap/std':>7s} {'best':>5s} {'top acc':>7s} "
              f"{'front':>6s}")
    print(header)
    print("-" * len(header))
    for label, f in figures["rules"].items():
        r, hv = f["train_seconds_ratio"], f["hypervolume"]
        gap = without["hypervolume"] - hv["mean"]
        print(f"{label:30s} {f['train_seconds']['mean']:8.0f} {r['mean']:5.2f}x [{r['min']:4.2f}, {r['max']:4.2f}] "
              f"{f['wall_seconds_ratio']['mean']:5.2f}x {f['full_budget_trials']:5.1f} "
              f"{hv['mean']:.6f} +- {hv['std']:.6f} [{hv['min']:.6f}, {hv['max']:.6f}] {gap:7.5f} "
              f"{gap / hv['std'] if hv['std'] else math.inf:7.2f} {f['keeps_most_accurate']:5.0%} "
              f"{f['best_full_budget_accuracy']['mean']:7.4f} {f['front_kept']:6.0%}")
    print("train s: mean training seconds; less training: without / with early stopping, mean [min, max]; wall: the "
          "same for simulated wall time; full: trials trained to the end; gap: hypervolume without early stopping "
          "minus the mean, and in standard deviations over the orders; best: orders whose front keeps the most "
          "accurate network; top acc: mean accuracy of the most accurate network trained to the end; front: share of "
          "the front without early stopping that trained to the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=Path, default=DEFAULT_CURVES, help="recorded curves (made when missing)")
    parser.add_argument("--candidates", type=int, default=27, help="networks sampled for the recording")
    parser.add_argument("--sample-seed", type=int, help="seed of the random sampler (default: the study's seed)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads while recording")
    parser.add_argument("--orders", type=int, default=200, help="random arrival orders replayed")
    parser.add_argument("--workers", type=int, default=4, help="simulated workers (one worker is replayed too)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the arrival orders")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.curves.is_file():
        data = json.loads(args.curves.read_text())
        log(f"replaying {args.curves} ({len(data['candidates'])} curves, recorded {data['date']}): nothing trained")
    else:
        data = record(args.curves, args.candidates, args.sample_seed, args.threads)
    figures = replay(data, args.orders, args.workers, args.seed)
    print_table(figures)
    emit(figures, args.out)


if __name__ == "__main__":
    main()
