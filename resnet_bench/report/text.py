"""The report's words and table cells, formatted once for the terminal, Markdown and HTML alike."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from resnet_bench.published import published_results
from resnet_bench.report.analysis import ACCURACY, MIN_TRIALS_FOR_TAU, PAIRED_TEST, STATUS_ORDER, TIE_P, Report
from resnet_bench.units import cost_text, duration_text, gflops_cell, plural, saving_text

# Objective metrics that the front table shows beyond accuracy, GFLOPs and parameters, with their headers.
EXTRA_METRICS = {"activations": "activations", "latency_ms": "latency ms", "train_seconds": "train s"}


def percent_interval(value: Any, low: Any, high: Any) -> str:
    """85.20% [83.6, 86.7]: the accuracy and its interval."""
    if pd.isna(value):
        return ""
    if pd.isna(low) or pd.isna(high):
        return f"{float(value):.2%}"
    return f"{float(value):.2%} [{100 * float(low):.1f}, {100 * float(high):.1f}]"


DATA_FIELDS = ("in_channels=", "num_classes=")  # set by the data set, the same for every trial: not shown


BASELINE_MARK = " (baseline"  # how a network's name says it is a baseline: "resnet20 (baseline)", "(baseline, ...)"


def network_name(row: Any) -> str:
    """A baseline by its preset name, a sampled network by its one-line spec (less the data set's fields)."""
    baseline = row.get("baseline")
    if isinstance(baseline, str) and baseline:
        return f"{baseline}{BASELINE_MARK})"
    spec = row.get("spec")
    if not isinstance(spec, str):
        return ""
    return ",".join(part for part in spec.split(",") if not part.startswith(DATA_FIELDS))


def names_a_baseline(name: str) -> bool:
    """Whether a name that network_name (or a row made from it) wrote is a baseline's: what the tables set in bold.
    A sampled network's name is its spec, which never holds a parenthesis, so none has the mark."""
    return BASELINE_MARK in name


def _number(value: Any, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def front_rows(report: Report, test_interval: bool = True) -> list[dict[str, str]]:
    """The front, cheapest first, as display strings under their column headers (the terminal leaves the test
    accuracy's interval out, for width)."""
    return _network_rows(report, report.front, test_interval)


def baselines_off_front(report: Report, test_interval: bool = True) -> list[dict[str, str]]:
    """The trained baselines that are not on the front, cheapest first, as front rows: shown under the front so that
    'did the search beat the baseline?' reads off one table."""
    t = report.trials
    off = t[t["is_baseline"].astype(bool) & (t["status"] == "trained") & ~t["on_front"].astype(bool)]
    cost = report.cost_metric
    return _network_rows(report, off.sort_values([cost, "number"]), test_interval, suffix=", not on the front")


def _network_rows(report: Report, frame: pd.DataFrame, test_interval: bool, suffix: str = "") -> list[dict[str, str]]:
    extra = [m for m in report.metrics if m in EXTRA_METRICS]
    rows = []
    for _, r in frame.iterrows():
        name = network_name(r)
        row = {
            "#": str(r["number"]), "network": name[:-1] + suffix + ")" if suffix and name.endswith(")") else name,
            "val acc [95% CI]": percent_interval(r[ACCURACY], r["val_low"], r["val_high"]),
            **({"test acc [95% CI]": percent_interval(r["test_accuracy"], r["test_low"], r["test_high"])}
               if test_interval else {"test acc": percent_interval(r["test_accuracy"], None, None)}),
            "GFLOPs": _number(r["gflops"], ".4f"), "params": _number(r["params"], ","),
        }
        for metric in extra:
            row[EXTRA_METRICS[metric]] = _number(r[metric], ",.4g" if metric != "activations" else ",")
        rows.append(row)
    return rows


def wrappable(text: str) -> str:
    """Text whose one-line specs may wrap between their fields (and nowhere else): a space after each comma that
    starts a `field=` item. The spec parser accepts the spaces, so a wrapped spec still copies and pastes."""
    return _SPEC_COMMA.sub(", ", text)


_SPEC_COMMA = re.compile(r",(?=[a-z_]+=)")


def published_rows(report: Report) -> list[dict[str, str]]:
    """The published results shown beside the study, with our cost of each network."""
    return [{"network": r["model"], "published test acc": f"{r['accuracy']:.2%}", "GFLOPs": gflops_cell(r["gflops"]),
             "params": f"{r['params']:,}", "source": f"{r['source']}, {r['location']}", "notes": r["notes"]}
            for _, r in report.published.iterrows()]


def _trial(row: dict[str, Any], cost: str) -> str:
    return (f"#{row['number']} {network_name(row)}: {percent_interval(row[ACCURACY], row['val_low'], row['val_high'])}"
            f" at {cost_text(cost, row[cost])}")


def summary_lines(report: Report) -> list[tuple[str, str]]:
    """(label, text) pairs: trials by status, compute time, hypervolume, best accuracy, the cheapest tie."""
    study = report.study
    counts = ", ".join(f"{report.counts[s]} {s}" for s in STATUS_ORDER if report.counts[s] or s == "trained")
    lines = [
        ("study", f"{study.name} on {study.dataset or 'no data set yet'}; "
                  + ", ".join(f"{d} {m}" for m, d in study.objectives)),
        ("trials", f"{len(report.trials)}: {counts}"),
        ("compute", f"{report.compute_seconds:,.0f} s in trials, {report.train_seconds:,.0f} s of it training"),
    ]
    if report.wall_seconds:
        paused = report.wall_seconds - report.running_seconds
        lines.append(("wall time", f"{duration_text(report.wall_seconds)} from the first trial's start to the last "
                      "one's end" + (f", {duration_text(report.running_seconds)} of it with a trial running (paused "
                                     f"{duration_text(paused)}: between commands)" if paused >= 1 else "")))
    if report.stopped_at:
        rungs = ", ".join(f"{n} after epoch {epoch}" for epoch, n in report.stopped_at.items())
        lines.append(("early stopping", f"{plural(sum(report.stopped_at.values()), 'trial')} stopped at a rung "
                      f"({rungs}); about {report.saved_seconds:,.0f} s of training saved against training each to its "
                      "recipe's epochs (its seconds per epoch times the epochs it skipped)"))
    if report.rung_taus:
        lines.append(("rung estimates", rung_tau_text(report)))
    if report.confirmed is not None:
        c = report.confirmed.networks
        lines.append(("confirmed", f"{plural(len(c), 'network')} re-trained {confirm_conditions(report.confirmed)}; "
                      f"{int(c['confirmed_front'].sum())} of them on the confirmed front; "
                      f"{tau_text(report.confirmed)}"))
    if study.baseline_recipe and bool(study.trials["is_baseline"].any()):
        lines.append(("baselines", f"each trained with the study's base recipe: {study.baseline_recipe}"))
    if report.reference is None or report.hypervolume is None:
        lines.append(("hypervolume", "none yet: no trained trial"))
    else:
        where = "; ".join(f"{m} {v:g} ({report.reference.origin[m]})" for m, v in report.reference.point.items())
        lines.append(("hypervolume", f"{report.hypervolume:.6g} from the reference point {where}"))
    lines.append(("published", published_note(report)))
    if report.best is None:
        lines.append(("front", "empty: the study has no trained trial yet"))
        return lines
    lines.append(("front", f"{len(report.front)} of {report.counts['trained']} trained trials"))
    lines.append(("best accuracy", _trial(report.best, report.cost_metric) + " (validation, 95% Wilson interval)"))
    for baseline, rival, p in report.versus:
        lines.append((f"vs {baseline['baseline']}", _versus_text(baseline, rival, p, report.cost_metric)))
    best, tied, cost = report.best, report.tied, report.cost_metric
    images = f"{int(best['val_images']):,} validation images"
    cheaper = report.trials[(report.trials["status"] == "trained") & (report.trials[cost] < best[cost])]
    if cheaper.empty:
        lines.append(("cheapest tie", "none: the best is the cheapest trained network"))
    elif tied is None or tied["number"] == best["number"]:
        why = (f"{PAIRED_TEST} on the {images} finds every cheaper network less accurate (p < {TIE_P:g})"
               if report.tie_rule == PAIRED_TEST else "no cheaper network's interval overlaps the best one's")
        lines.append(("cheapest tie", f"none: {why}"))
    else:
        saving = saving_text(cost, best[cost] / tied[cost]) if tied[cost] else f"less {cost}"
        why = (f"{PAIRED_TEST} on the {images} cannot tell it from the best (p = {tied['p_vs_best']:.2g})"
               if report.tie_rule == PAIRED_TEST else
               "its interval overlaps the best one's (a study without per-image results: no paired test)")
        lines.append(("cheapest tie", _trial(tied, cost) + f": {why}, for {saving}"))
    return lines


def rung_tau_text(report: Report) -> str:
    """Kendall's tau of the rung estimate at each rung against the final validation accuracy, or why not."""
    estimate = report.rung_taus[0].estimate
    parts = [f"after epoch {r.epoch}: " + (f"{r.tau:.2f} over {plural(r.trials, 'trial')}" if r.tau is not None
                                         else f"too few trials to tell ({r.trials} of the {MIN_TRIALS_FOR_TAU} "
                                              "needed)")
             for r in report.rung_taus]
    which = " (those that went on past every rung: the better ones, so a lower bound)" if report.stopped_at else ""
    return (f"Kendall's tau between {estimate} at each rung and the final validation accuracy, over the trials "
            f"trained to the end{which}: {'; '.join(parts)}")


def published_note(report: Report) -> str:
    """How many published results the chart shows, or why it shows none."""

    dataset = report.study.dataset
    if len(report.published):
        return f"{len(report.published)} results on {dataset} as published (test accuracy), on the chart and the page"
    have = sorted({r.dataset for r in published_results()})
    if dataset in have:
        return "none shown yet: they are placed at the cost of the study's images, known once a trial is trained"
    return (f"none: the package's table of published results has {', '.join(have)}, not {dataset or 'this data set'}"
            " (a subset such as the mini set is not the data set a paper reports)")


def confirmed_rows(result: Any) -> list[dict[str, str]]:
    """The confirmed networks as display strings under their headers (the terminal, Markdown and HTML): the
    search's validation accuracy, the confirmed ones (mean ± standard deviation over seeds, in points), and
    whether the network is on the confirmed front. The seeds and epochs, the same for every network of one confirm
    command, are in `confirm_conditions`."""
    def pm(mean: Any, std: Any) -> str:
        return f"{mean:.2%}" + ("" if std is None or std != std else f" ± {100 * std:.2f}")

    rows = []
    for _, r in result.networks.iterrows():
        rows.append({
            "#": str(r["number"]), "network": network_name(r),
            "search val": "" if r["search_val_accuracy"] is None else f"{r['search_val_accuracy']:.2%}",
            "val mean ± sd": pm(r["val_accuracy_mean"], r["val_accuracy_std"]),
            "test mean ± sd": pm(r["test_accuracy_mean"], r["test_accuracy_std"]),
            "front": "yes" if r["confirmed_front"] else "",
        })
    return rows


def _versus_text(baseline: dict[str, Any], rival: dict[str, Any] | None, p: float | None, cost: str) -> str:
    """'#7 is 1.80 points more accurate (p = 0.03) at 1.54x fewer GFLOPs': the search against a baseline."""
    mine = f"{baseline[ACCURACY]:.2%} at {cost_text(cost, baseline[cost])}"
    if rival is None:
        return f"{mine}; no searched network is as cheap"
    points = 100 * (rival[ACCURACY] - baseline[ACCURACY])
    how = (f"{points:.2f} points more accurate" if points > 0 else
           f"{-points:.2f} points less accurate" if points < 0 else "as accurate")
    test = f" ({PAIRED_TEST}: p = {p:.2g})" if p is not None else ""
    cheaper = saving_text(cost, baseline[cost] / rival[cost]) if rival[cost] and rival[cost] < baseline[cost] \
        else f"the same {cost}"
    return (f"{mine}; the search's most accurate network at no more {cost}, #{rival['number']}, is {how}{test}, "
            f"at {cheaper}")


def confirm_conditions(result: Any) -> str:
    """'for 6 epochs with seeds 1, 2, 3': how the confirmed networks were re-trained."""
    networks = result.networks
    epochs = sorted(set(networks["epochs"]))
    seeds = sorted({s for seeds in networks["seeds"] for s in seeds})
    return (f"for {'/'.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''} with seed"
            f"{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")


def tau_text(result: Any) -> str:
    """Kendall's tau in words."""
    if result.kendall_tau is None:
        return "Kendall's tau: none (fewer than two networks with distinct accuracies)"
    return (f"Kendall's tau {result.kendall_tau:+.2f} between search-time and confirmed validation accuracy "
            f"over {plural(len(result.networks), 'network')} "
            "(1: the search ranked them exactly as the re-training did)")
