"""The degradation experiment of He et al. 2015 (§4.1-4.2, Figures 1 and 6): plain networks train worse as they get
deeper, residual networks of the same depths train better.

For each depth d (6n+2), plain-d and ResNet-d (the CIFAR nets of §4.2: 3x3 stem of 16 channels, three stages of n
basic blocks at 16, 32 and 64 planes; option A shortcuts, or none) train with one recipe and seed, the paper's
initialisation (He normal convs, BN at 1 and 0: no zero-initialised last BN, which would shrink the residual
responses by construction). The runs are the baselines of an ordinary study in its storage, so a killed run resumes
after its last epoch, a run of more depths adds only those, and `resnet-bench report` reads it like any other study.
Each run stores its per-epoch training error (on the augmented images, during the epoch, as the paper's curves) and
test error (after the epoch); this module reads them back and writes the figure, the curves and a summary.
"""

from __future__ import annotations

import re
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_bench.errors import BadInputError
from resnet_bench.files import atomic_path
from resnet_bench.presets import names as preset_names
from resnet_bench.recipe import get_recipe
from resnet_bench.search.records import TRAINED, TrialRecord

DEFAULT_DEPTHS = (20, 32, 44, 56)  # Figure 6, left and middle
MAX_BLOCKS = 200  # blocks per stage: ResNet-1202, the paper's deepest
DEFAULT_DATASET = "fashion-mnist"
PLAIN, RESIDUAL = "plain", "residual"
FILES = ("degradation.png", "curves.csv", "summary.md")


def parse_depths(text: str) -> tuple[int, ...]:
    """`--depths 20,32,44,56`: distinct CIFAR-net depths 6n+2 (n >= 1), in increasing order."""
    accepted = "depths 6n+2 with 1 <= n <= 200 (8, 14, 20, 32, 44, 56, 110, ..., 1202), separated by commas"
    depths = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 8 or (int(part) - 2) % 6 or int(part) > 6 * MAX_BLOCKS + 2:
            raise BadInputError(f"--depths {text}: {part!r} is not accepted; use {accepted}")
        depths.append(int(part))
    if len(set(depths)) != len(depths):
        raise BadInputError(f"--depths {text}: a depth is given twice; use distinct {accepted}")
    return tuple(sorted(depths))


def network(kind: str, depth: int) -> str:
    """The model that stands for plain-d or ResNet-d: its preset's name, or a preset with its layers replaced."""
    name = f"{'plain' if kind == PLAIN else 'resnet'}{depth}"
    if name in preset_names():
        return name
    n = (depth - 2) // 6
    return f"{'plain' if kind == PLAIN else 'resnet'}20,layers={n}-{n}-{n}"


def label(kind: str, depth: int) -> str:
    """As the paper names them: plain-20, ResNet-20."""
    return f"{'plain' if kind == PLAIN else 'ResNet'}-{depth}"


def study_name(dataset: str, epochs: int, seed: int) -> str:
    """One study per data set, length and seed (each a condition of the curves); its depths may grow."""
    return f"degradation-{re.sub(r'[^A-Za-z0-9_.-]+', '-', dataset)}-{epochs}ep-seed{seed}"


def default_val_size(dataset: str) -> int:
    """The paper's 45k/5k split held 5,000 images out; the bundled mini set holds 10,000 in all, so 2,000 there."""
    return 2000 if dataset == "fashion-mnist-mini" else 5000


def study_text(dataset: str, depths: tuple[int, ...], epochs: int, seed: int, val_size: int) -> str:
    """The experiment as a study file: its networks are its baselines (trained with the study's one recipe), its
    space the family they belong to (the same for any depths, so that a later run may add depths), so that each run
    has its place in it."""
    baselines = ", ".join(f'"{network(kind, d)}"' for d in depths for kind in (PLAIN, RESIDUAL))
    return f"""# resnet-bench reproduce degradation: He et al. 2015, sections 4.1-4.2, Figures 1 and 6.
name = "{study_name(dataset, epochs, seed)}"
description = "Plain against residual CIFAR nets of depths {', '.join(map(str, depths))}: training and test error."
dataset = "{dataset}"
seed = {seed}
val_size = {val_size}
baselines = [{baselines}]
curves = true
checkpoints = true

[[objectives]]
metric = "val_accuracy"
direction = "maximize"

[[objectives]]
metric = "gflops"
direction = "minimize"

[space]
stages = 3
blocks = {{ low = 1, high = {MAX_BLOCKS} }}
stem = "cifar"
stem_width = 16
block = "basic"
shortcut = ["A", "none"]
zero_init_residual = false

[recipe]
name = "he2015"
epochs = {epochs}

[budget]
n_trials = {2 * len(depths)}

[sampler]
name = "random"
"""


@dataclass
class Degradation:
    """What the experiment measured and where it wrote it."""

    name: str  # the study's name
    storage: str
    folder: Path  # the study's folder: the figure, the curves and the summary
    curves: Any  # pandas.DataFrame: one row per network and epoch (CURVE_COLUMNS)
    final: Any  # pandas.DataFrame: one row per network, its last epoch (FINAL_COLUMNS)
    trained_now: int  # runs this command trained (the others were in the storage already)
    missing: tuple[str, ...]  # networks with no finished run (a failure: see the study's report)


CURVE_COLUMNS = ("network", "kind", "depth", "epoch", "train_error", "test_error", "val_error", "train_loss", "lr",
                 "trial", "checkpoint")
FINAL_COLUMNS = ("depth", "kind", "network", "epochs", "train_error", "test_error", "val_error", "params", "gflops",
                 "trial", "checkpoint")


class DegradationRun:
    """The experiment's study, opened (or resumed) in its storage, with the networks it still has to train."""

    def __init__(
        self, *, dataset: str = DEFAULT_DATASET, depths: tuple[int, ...] = DEFAULT_DEPTHS, epochs: int | None = None,
        seed: int = 0, val_size: int | None = None, out: str | Path = "reports", storage: str | None = None,
        device: str = "auto",
    ) -> None:
        """`epochs` defaults to the he2015 recipe's 182 (the paper's 64k iterations of batch 128 on 45k images)."""
        import optuna

        from resnet_bench.search.config import parse_study
        from resnet_bench.search.storage import study_to_write
        from resnet_bench.search.sweep import Sweep

        epochs = epochs if epochs is not None else get_recipe("he2015").epochs
        if epochs < 1:
            raise BadInputError(f"--epochs {epochs} is not accepted; give a whole number of epochs >= 1")
        self.depths = depths
        val = val_size if val_size is not None else default_val_size(dataset)
        text = study_text(dataset, depths, epochs, seed, val)
        self.config = parse_study(tomllib.loads(text), source=text)
        self.location = study_to_write(self.config, storage=storage, out=Path(out) / "degradation")
        self.sweep = Sweep(self.config, self.location, device=device)
        # A run killed more than two heartbeats ago: failed now and queued again, to resume from its saved state.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.sweep.study)
        self.todo = _untrained_baselines(self.sweep.study, self.config.baselines)
        # Only the queued runs are this command's: one that another command is training is left to it (a sweep
        # asked for more trials than are queued would sample networks outside the experiment).
        self.queued = [t.user_attrs.get("baseline") for t in self.sweep.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.WAITING,)) if t.user_attrs.get("baseline") in self.todo]

    def run(self, **progress: Callable[..., Any]) -> Degradation:
        """Train what the storage lacks (`progress`: the Sweep's on_trial_start, on_epoch, on_trial_end and
        on_batch), then read every run of these depths back and write the figure, the curves and the summary."""
        self.sweep.show_progress(**progress)
        trained_now = self.sweep.run(n_trials=len(self.queued)).trained if self.queued else 0
        curves, final = read_curves(self.sweep.study, self.depths)
        self.location.folder.mkdir(parents=True, exist_ok=True)
        write_files(curves, final, self.location.folder, self.config, self.location.storage)
        left = set(_untrained_baselines(self.sweep.study, self.config.baselines, queue=False))
        return Degradation(name=self.config.name, storage=self.location.storage, folder=self.location.folder,
                           curves=curves, final=final, trained_now=trained_now,
                           missing=tuple(b for b in self.config.baselines if b in left))


def _untrained_baselines(study: Any, baselines: tuple[str, ...], queue: bool = True) -> list[str]:
    """The networks without a finished run; each is queued (again, after a failure) unless a trial of it is queued
    or running already (a killed run's trial, which the sweep retries from its saved state)."""
    import optuna

    from resnet_bench.search.space import BASELINE_PARAMS

    trials = study.get_trials(deepcopy=False)
    done = {t.user_attrs.get("baseline") for t in trials if TrialRecord.from_attrs(t.user_attrs).status == TRAINED}
    pending = {t.user_attrs.get("baseline") for t in trials
               if t.state in (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)}
    todo = [b for b in baselines if b not in done]
    for b in todo if queue else ():
        if b not in pending:  # failed before: the same place in the space, queued again
            earlier = next(t for t in trials if t.user_attrs.get("baseline") == b)
            params = {k: earlier.params[k] for k in earlier.user_attrs.get(BASELINE_PARAMS, []) if k in earlier.params}
            study.enqueue_trial(params, user_attrs={"baseline": b, BASELINE_PARAMS: sorted(params)})
    return todo


def read_curves(study: Any, depths: tuple[int, ...]) -> tuple[Any, Any]:
    """Per-epoch and final errors of the finished runs of these depths, from the study's trial records."""
    import pandas as pd

    wanted = {network(kind, d): (kind, d) for d in depths for kind in (PLAIN, RESIDUAL)}
    rows, final = [], []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.from_attrs(t.user_attrs)
        if record.status != TRAINED or record.baseline not in wanted or not record.history:
            continue
        kind, depth = wanted[record.baseline]
        for h in record.history:
            rows.append({"network": label(kind, depth), "kind": kind, "depth": depth, "epoch": h["epoch"],
                         "train_error": h["train_error"], "test_error": h["test_error"],
                         "val_error": 1 - h["val_accuracy"], "train_loss": h["train_loss"], "lr": h["lr"],
                         "trial": t.number, "checkpoint": record.checkpoint})
        last = record.history[-1]
        final.append({"depth": depth, "kind": kind, "network": label(kind, depth), "epochs": last["epoch"],
                      "train_error": last["train_error"], "test_error": 1 - record.test_accuracy,
                      "val_error": 1 - record.val_accuracy, "params": record.params, "gflops": record.gflops,
                      "trial": t.number, "checkpoint": record.checkpoint})
    order = {PLAIN: 0, RESIDUAL: 1}

    def sorted_by(frame: Any, columns: list[str]) -> Any:  # plain before residual, not alphabetically
        return frame.sort_values(columns, key=lambda c: c.map(order) if c.name == "kind" else c, ignore_index=True)

    return (sorted_by(pd.DataFrame(rows, columns=list(CURVE_COLUMNS)), ["kind", "depth", "epoch"]),
            sorted_by(pd.DataFrame(final, columns=list(FINAL_COLUMNS)), ["depth", "kind"]))


def effect(final: Any) -> dict[str, str]:
    """Whether the paper's effect appeared, per kind: the deepest network's final training error against the
    shallowest's (the paper: higher for plain nets, lower for ResNets)."""
    verdict = {}
    for kind in (PLAIN, RESIDUAL):
        rows = final[final["kind"] == kind].sort_values("depth")
        if len(rows) < 2:
            verdict[kind] = "needs two depths"
            continue
        shallow, deep = rows.iloc[0], rows.iloc[-1]
        deeper_worse = deep["train_error"] > shallow["train_error"]
        expected = deeper_worse if kind == PLAIN else not deeper_worse
        verdict[kind] = (f"{deep['network']} {deep['train_error']:.2%} against {shallow['network']} "
                         f"{shallow['train_error']:.2%} training error: "
                         f"{'as in the paper' if expected else 'not as in the paper'} (the paper: "
                         f"{'deeper is worse' if kind == PLAIN else 'deeper is better'})")
    return verdict


def write_files(curves: Any, final: Any, folder: Path, config: Any, storage: str) -> None:
    """degradation.png (Figure 6's layout), curves.csv and summary.md, each written whole."""

    with atomic_path(folder / "curves.csv") as tmp:
        curves.to_csv(tmp, index=False)
    with atomic_path(folder / "summary.md") as tmp:
        tmp.write_text(summary_markdown(final, config, storage), encoding="utf-8")
    with atomic_path(folder / "degradation.png") as tmp:
        figure(curves, config).savefig(tmp, format="png", dpi=144)


def figure(curves: Any, config: Any) -> Any:
    """Plain nets on the left, ResNets on the right; per depth one colour, training error dashed, test error solid."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    depths = sorted(curves["depth"].unique()) if len(curves) else []
    colours = {d: f"C{i}" for i, d in enumerate(depths)}
    for ax, kind, title in zip(axes, (PLAIN, RESIDUAL), ("plain networks", "ResNets"), strict=True):
        for depth in depths:
            run = curves[(curves["kind"] == kind) & (curves["depth"] == depth)]
            if not len(run):
                continue
            ax.plot(run["epoch"], 100 * run["train_error"], "--", color=colours[depth], linewidth=1)
            ax.plot(run["epoch"], 100 * run["test_error"], "-", color=colours[depth], linewidth=1.8,
                    label=label(kind, depth))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(title="solid: test, dashed: training", fontsize=8, title_fontsize=8)
    axes[0].set_ylabel("error (%)")
    recipe = config.base_recipe()
    fig.suptitle(f"{config.dataset}: {recipe.epochs} epochs of he2015 (lr {recipe.lr:g}, /10 at 50% and 75%), "
                 f"seed {config.seed}", fontsize=10)
    return fig


def summary_markdown(final: Any, config: Any, storage: str) -> str:
    from resnet_bench.search.storage import safe_url

    about = (f"He et al. 2015, Figure 6. Study `{config.name}` in `{safe_url(storage)}`; recipe he2015 for "
             f"{config.base_recipe().epochs} epochs, seed {config.seed}, {config.val_size:,} validation images "
             "held out. Training error: the augmented training images misclassified during the last epoch; test "
             "error: the test set after it.")
    lines = [f"# Degradation: plain against residual networks on {config.dataset}", "", about, "",
             "| depth | plain training error | plain test error | ResNet training error | ResNet test error |",
             "| --- | --- | --- | --- | --- |"]
    for depth in sorted(final["depth"].unique()):
        cells = []
        for kind in (PLAIN, RESIDUAL):
            row = final[(final["depth"] == depth) & (final["kind"] == kind)]
            cells += [f"{row.iloc[0][k]:.2%}" if len(row) else "(not trained)" for k in ("train_error", "test_error")]
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    lines += ["", "Whether the paper's effect appeared:", ""]
    lines += [f"- {'plain' if kind == PLAIN else 'ResNets'}: {text}" for kind, text in effect(final).items()]
    return "\n".join(lines) + "\n"
