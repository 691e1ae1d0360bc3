"""The report's two charts, drawn with matplotlib's object API (no pyplot state, no display needed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from resnet_bench.pareto import pareto_ranks
from resnet_bench.report.analysis import ACCURACY, Report
from resnet_bench.report.text import published_note
from resnet_bench.search.records import TRAINED

DPI = 144  # 1,152 x 720 pixels at 8 x 5 inches: sharp on a screen, small enough to embed


def _figure(panels: int = 1):  # type: ignore[no-untyped-def]
    """A figure of 8 x 5 inches (6 x 5 per panel, side by side, for more than one) and its axes (a tuple then)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8 if panels == 1 else 6 * panels, 5), layout="constrained")
    return fig, (fig.add_subplot() if panels == 1 else tuple(fig.subplots(1, panels, sharey=True)))


def pareto_chart(report: Report, path: Path) -> None:
    """pareto_figure, saved."""
    pareto_figure(report).savefig(path, dpi=DPI)


def pareto_figure(report: Report):  # type: ignore[no-untyped-def]
    """Validation accuracy against GFLOPs: every trained trial, the accuracy-GFLOPs front as a step line, the
    study's own front (over all its objectives) ringed, baselines and published results labelled."""
    fig, ax = _figure()
    trained = report.trials[(report.trials["status"] == TRAINED) & report.trials[ACCURACY].notna()
                            & report.trials["gflops"].notna()]
    x = trained["gflops"].to_numpy(dtype=float)
    y = 100 * trained[ACCURACY].to_numpy(dtype=float)
    if len(trained):
        low = 100 * trained["val_low"].to_numpy(dtype=float, na_value=np.nan)
        high = 100 * trained["val_high"].to_numpy(dtype=float, na_value=np.nan)
        ax.errorbar(x, y, yerr=[y - low, high - y], fmt="none", ecolor="0.75", elinewidth=0.8, zorder=1)
        ax.scatter(x, y, s=18, color="tab:blue", alpha=0.7, label=f"trained trials ({len(trained)})", zorder=2)
        steps = pareto_ranks(np.column_stack([y, x]), ["maximize", "minimize"]) == 1
        order = np.argsort(x[steps])
        ax.step(x[steps][order], y[steps][order], where="post", color="tab:red", linewidth=1.5,
                label="accuracy-GFLOPs front", zorder=3)
        on_front = trained["on_front"].to_numpy(dtype=bool)
        ax.scatter(x[on_front], y[on_front], s=70, facecolors="none", edgecolors="tab:red", linewidths=1.2,
                   label=f"study front ({', '.join(report.metrics)})", zorder=4)
        # The front's trial numbers, so that each ringed point reads against its row of the front table.
        for gx, acc, number in zip(x[on_front], y[on_front], trained["number"][on_front], strict=True):
            ax.annotate(f"#{number}", (gx, acc), textcoords="offset points", xytext=(-6, 7), fontsize=7,
                        color="tab:red", ha="right")
        baseline = trained["baseline"].fillna("").astype(str).to_numpy() != ""
        if baseline.any():
            ax.scatter(x[baseline], y[baseline], marker="s", s=40, color="black", zorder=5,
                       label="baseline (the study's base recipe)")
        for gx, acc, name in zip(x[baseline], y[baseline], trained["baseline"][baseline], strict=True):
            ax.annotate(name, (gx, acc), textcoords="offset points", xytext=(5, -12), fontsize=8)
    published = report.published
    if len(published):
        px, py = published["gflops"].to_numpy(dtype=float), 100 * published["accuracy"].to_numpy(dtype=float)
        ax.scatter(px, py, marker="D", s=30, color="tab:green", label="published (test accuracy)", zorder=2)
        for gx, acc, name in zip(px, py, published["model"], strict=True):
            right = gx == px.max() and len(px) > 1  # the rightmost's name to its left, inside the axes
            ax.annotate(name, (gx, acc), textcoords="offset points", xytext=(-5 if right else 5, 3), fontsize=7,
                        color="tab:green", ha="right" if right else "left")
    every_x = np.concatenate([x, published["gflops"].to_numpy(dtype=float) if len(published) else []])
    if len(every_x) and every_x.min() > 0 and every_x.max() / every_x.min() > 20:
        ax.set_xscale("log")
    if not len(trained) and not len(published):
        ax.text(0.5, 0.5, "no trained trial yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("GFLOPs per image (conv + linear, multiply-adds)")
    ax.set_ylabel("validation accuracy (%), 95% interval")
    fig.suptitle(f"{report.study.name}: accuracy against compute ({report.study.dataset})")
    if len(trained) and not len(published):  # say why, rather than leave the reader looking for them
        # Above the axes, where the layout keeps room for it: never over a point, an axis or the legend.
        ax.set_title(textwrap.fill(f"published results: {published_note(report)}", 140), fontsize=7, color="0.4")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        # Under the chart, outside the axes: it hides no point and no interval (a baseline's included).
        fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig


# The unit of each objective, for the hypervolume's unit (the product of its objectives').
UNITS = {"val_accuracy": "accuracy", "gflops": "GFLOPs", "params": "parameters", "activations": "activations",
         "latency_ms": "ms", "train_seconds": "s"}


def hypervolume_chart(report: Report, path: Path) -> None:
    """How fast the search found its front, two ways side by side: the hypervolume after each trained trial
    (infeasible and duplicate proposals train nothing and add nothing, so the x axis counts trained trials only),
    and the hypervolume against the training seconds spent, stopped and failed trials' seconds included: what
    the front cost in compute."""
    fig, (by_trial, by_seconds) = _figure(panels=2)
    ranked = report.trials[report.trials["rank"].notna()].sort_values("number")
    curve = ranked["hypervolume_so_far"].to_numpy(dtype=float)
    if len(curve):
        count = np.arange(1, len(curve) + 1)
        by_trial.step(count, curve, where="post", color="tab:purple")
        by_trial.scatter(count, curve, s=10, color="tab:purple")
        by_trial.set_xlim(0, len(curve) + 1)
    spent = report.by_seconds
    if len(spent):
        minutes = spent["seconds"].to_numpy(dtype=float) / 60
        volume = spent["hypervolume"].to_numpy(dtype=float)
        by_seconds.step(np.concatenate([[0.0], minutes]), np.concatenate([[0.0], volume]), where="post",
                        color="tab:purple")
        by_seconds.scatter(minutes, volume, s=10, color="tab:purple")
        by_seconds.set_xlim(left=0)
    for ax in (by_trial, by_seconds):
        if not len(curve):
            ax.text(0.5, 0.5, "no trained trial yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    reference = report.reference
    where = ", ".join(f"{m} {v:g}" for m, v in reference.point.items()) if reference else "none yet"
    unit = " x ".join(UNITS.get(m, m) for m in report.metrics)
    by_trial.set_xlabel("trained trials, in trial-number order (infeasible and duplicate proposals left out)")
    by_trial.set_ylabel(f"hypervolume of the front so far ({unit})")
    by_trial.set_title("after each trained trial", fontsize=10)
    by_seconds.set_xlabel("training minutes spent, all workers together (stopped and failed trials included)")
    by_seconds.set_title("against the training it cost (trials in the order they ended)", fontsize=10)
    fig.suptitle(f"{report.study.name}: hypervolume of the front (reference point: {where})", fontsize=11)
    fig.savefig(path, dpi=DPI)
