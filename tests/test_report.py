"""The report: Pareto ranks and hypervolume checked by hand, intervals, the report of a real sweep, its page in a
real browser, and bad input."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import sys
from io import StringIO

import numpy as np
import optuna
import pandas as pd
import pytest

from resnet_bench.cli import main
from resnet_bench.correctness import pack_correct, unpack_correct
from resnet_bench.pareto import hypervolume, hypervolume_curve, pareto_ranks
from resnet_bench.report.analysis import ADDED_COLUMNS, build_report, resolve_reference
from resnet_bench.report.export import FILES, html_table, summary, write_report
from resnet_bench.report.references import published_points
from resnet_bench.report.stats import mcnemar_exact, wilson_interval
from resnet_bench.report.text import baselines_off_front, front_rows, names_a_baseline, summary_lines
from resnet_bench.search.config import StudyFileError, load_study_file
from resnet_bench.search.records import TRIAL_COLUMNS, StudyTrials
from resnet_bench.search.study import open_study

from .helpers import TINY_STUDY, run, write

MAX_MIN = ["maximize", "minimize"]


# -- Pareto ranks, by hand ------------------------------------------------------------------------------------

def test_ranks_with_mixed_directions():
    # (accuracy up, GFLOPs down): a=(0.9, 2) b=(0.8, 1) c=(0.7, 3) is dominated by both, d=(0.85, 2.5) by a only.
    points = [[0.9, 2], [0.8, 1], [0.7, 3], [0.85, 2.5]]
    assert pareto_ranks(points, MAX_MIN).tolist() == [1, 1, 3, 2]
    # Both minimised: b dominates a and d, c (lowest first value) is dominated by none.
    assert pareto_ranks(points, ["minimize", "minimize"]).tolist() == [2, 1, 1, 2]


def test_ties_and_duplicates_share_a_rank():
    points = [[0.9, 1.0], [0.9, 1.0], [0.9, 2.0], [0.8, 1.0]]
    # Equal points do not dominate each other; (0.9, 2) and (0.8, 1) are each dominated by (0.9, 1).
    assert pareto_ranks(points, MAX_MIN).tolist() == [1, 1, 2, 2]


def test_a_single_point_and_no_points():
    assert pareto_ranks([[0.5, 3.0]], MAX_MIN).tolist() == [1]
    assert pareto_ranks(np.zeros((0, 2)), MAX_MIN).tolist() == []
    assert hypervolume(np.zeros((0, 2)), [0, 1], MAX_MIN) == 0.0


def test_ranks_in_three_objectives():
    # (accuracy up, GFLOPs down, params down): b trades params for accuracy, so only c is dominated (by a).
    points = [[0.9, 1, 10], [0.8, 1, 5], [0.85, 2, 10]]
    assert pareto_ranks(points, ["maximize", "minimize", "minimize"]).tolist() == [1, 1, 2]


def test_bad_points_are_refused():
    with pytest.raises(ValueError, match="finite"):
        pareto_ranks([[math.inf, 1.0]], MAX_MIN)
    with pytest.raises(ValueError, match="shape"):
        pareto_ranks([[1.0, 2.0, 3.0]], MAX_MIN)
    with pytest.raises(ValueError, match="maximize or minimize"):
        pareto_ranks([[1.0, 2.0]], ["max", "min"])


# -- hypervolume, by hand ------------------------------------------------------------------------------------

def test_hypervolume_two_objectives():
    # From the reference (accuracy 0, GFLOPs 2): (0.8, 0.5) dominates 0.8 x 1.5, and (0.9, 1) adds 0.1 x 1.
    assert hypervolume([[0.9, 1.0], [0.8, 0.5]], [0.0, 2.0], MAX_MIN) == pytest.approx(1.3)
    # A dominated point and a duplicate add nothing; a point beyond the reference adds nothing.
    assert hypervolume([[0.9, 1.0], [0.8, 0.5], [0.7, 1.5], [0.9, 1.0], [0.95, 2.5]], [0.0, 2.0],
                       MAX_MIN) == pytest.approx(1.3)
    assert hypervolume([[0.5, 1.0]], [0.0, 2.0], MAX_MIN) == pytest.approx(0.5)


def test_hypervolume_three_objectives():
    directions = ["maximize", "minimize", "minimize"]
    # One box: 0.5 x (4 - 2) x (5 - 3) = 2. Two boxes: 2 + 0.4 x 3 x 4 - overlap 0.4 x 2 x 2 = 2 + 4.8 - 1.6.
    assert hypervolume([[0.5, 2, 3]], [0, 4, 5], directions) == pytest.approx(2.0)
    assert hypervolume([[0.5, 2, 3], [0.4, 1, 1]], [0, 4, 5], directions) == pytest.approx(5.2)


def test_hypervolume_curve_is_the_volume_of_each_prefix():
    curve = hypervolume_curve([[0.5, 1.0], [0.3, 1.5], [0.9, 1.0], [0.2, 0.5]], [0.0, 2.0], MAX_MIN)
    assert curve.tolist() == pytest.approx([0.5, 0.5, 0.9, 0.9 + 0.2 * 0.5])


# -- intervals -----------------------------------------------------------------------------------------------

def test_wilson_interval_by_hand():
    # 8 of 10: the textbook example, 95%: (0.4902, 0.9433).
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    # 0 of 10 and 10 of 10 stay inside [0, 1] and are not empty: upper bound z^2 / (n + z^2).
    z2 = 1.959963984540054 ** 2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    # More images, a narrower interval around the same accuracy.
    assert np.diff(wilson_interval(1600, 2000)) < np.diff(wilson_interval(400, 500))
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


# -- the paired test, by hand -----------------------------------------------------------------------------------

def test_mcnemar_exact_p_values_by_hand():
    # Only disagreements count. 6 against 1 of 7: p = 2 (C(7,0) + C(7,1)) / 2^7 = 16 / 128.
    a, b = [1] * 6 + [0] + [1] * 5, [0] * 6 + [1] + [1] * 5  # five images both got right change nothing
    assert mcnemar_exact(a, b) == 0.125 and mcnemar_exact(b, a) == 0.125
    assert mcnemar_exact([1] * 10, [0] * 10) == 2 / 2**10  # every disagreement one way
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]) == 1.0  # never disagree
    assert mcnemar_exact([1, 0], [0, 1]) == 1.0  # capped at 1
    # 15 against 5 of 20: 2 (1 + 20 + 190 + 1140 + 4845 + 15504) / 2^20.
    assert mcnemar_exact([1] * 15 + [0] * 5, [0] * 15 + [1] * 5) == pytest.approx(2 * 21700 / 2**20)
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact([1, 0], [1, 0, 1])


def test_correctness_round_trip_one_bit_per_image():
    vector = np.arange(2000) % 3 == 0
    text = pack_correct(vector)
    assert len(text) == 336  # 250 bytes of base64
    assert (unpack_correct(text, 2000) == vector).all()
    assert pack_correct([True, False, True]) == "oA=="  # 0b10100000: the first image in the highest bit
    with pytest.raises(ValueError, match="does not hold 3000 images"):
        unpack_correct(text, 3000)
    with pytest.raises(ValueError, match="not a correctness vector"):
        unpack_correct("not base64!", 8)


# -- the analysis on tables made by hand ---------------------------------------------------------------------

def make_trials(rows: list[dict], objectives=(("val_accuracy", "maximize"), ("gflops", "minimize")),
                constraints=None, reference_point=None) -> StudyTrials:
    full = [{"status": "trained", "state": "complete", "baseline": "", "val_images": 1000, **r,
             "is_baseline": bool(r.get("baseline"))} for r in rows]
    frame = pd.DataFrame.from_records(full, columns=list(TRIAL_COLUMNS))
    return StudyTrials(name="hand", storage="sqlite:///nowhere.db", objectives=tuple(objectives), dataset="cifar10",
                       constraints=constraints or {}, reference_point=reference_point or {}, trials=frame)


def _flipped(base: np.ndarray, wrong: range, right: range) -> np.ndarray:
    out = base.copy()
    out[list(wrong)], out[list(right)] = False, True
    return out


def test_the_cheapest_tie_is_decided_by_the_paired_test():
    best = np.arange(1000) < 900  # 90.0%
    # b: 15 images the best gets right and b not, 5 the other way: 89.0%, its Wilson interval overlaps the best's,
    # but the paired test tells them apart (p = 0.041). c: 8 against 4 (89.6%): p = 2 (1 + 12 + 66 + 220 + 495) /
    # 2^12 = 0.388, a tie.
    vectors = {0: best, 1: _flipped(best, range(15), range(900, 905)),
               2: _flipped(best, range(20, 28), range(910, 914))}
    study = make_trials([
        {"number": 0, "val_accuracy": 0.900, "gflops": 4.0, "spec": "a"},
        {"number": 1, "val_accuracy": 0.890, "gflops": 1.0, "spec": "b"},
        {"number": 2, "val_accuracy": 0.896, "gflops": 2.0, "spec": "c"},
    ])
    study.val_correct = {n: pack_correct(v) for n, v in vectors.items()}
    report = build_report(study)
    assert report.tie_rule == "McNemar's exact test"
    assert report.trials["p_vs_best"].tolist() == pytest.approx([1.0, 2 * 21700 / 2**20, 2 * 794 / 2**12])
    assert report.best["number"] == 0 and report.tied["number"] == 2
    line = dict(summary_lines(report))["cheapest tie"]
    assert "#2 c" in line and "McNemar's exact test on the 1,000 validation images" in line and "p = 0.39" in line
    assert "2x fewer GFLOPs" in line
    # Without per-image results (a study of an earlier release) the intervals decide, and say so: b, the cheapest.
    study.val_correct = {}
    report = build_report(study)
    assert report.tie_rule == "overlapping 95% Wilson intervals" and report.tied["number"] == 1
    assert "no paired test" in dict(summary_lines(report))["cheapest tie"]
    assert report.trials["p_vs_best"].isna().all()
    # The best alone, then every cheaper network told apart from it.
    study.val_correct = {n: pack_correct(v) for n, v in vectors.items()}
    study.trials.loc[2, "status"] = "stopped"
    study.val_correct[1] = pack_correct(_flipped(best, range(30), range(0)))  # 30 against 0: p = 2^-29
    line = dict(summary_lines(build_report(study)))["cheapest tie"]
    assert line == "none: McNemar's exact test on the 1,000 validation images finds every cheaper network less " \
                   "accurate (p < 0.05)"


def test_front_summary_and_the_cheapest_network_tied_with_the_best():
    study = make_trials([
        {"number": 0, "val_accuracy": 0.90, "gflops": 4.0, "spec": "a"},
        {"number": 1, "val_accuracy": 0.89, "gflops": 1.0, "spec": "b"},  # within 0.90's interval on 1000 images
        {"number": 2, "val_accuracy": 0.80, "gflops": 0.5, "spec": "c"},  # cheaper, clearly worse
        {"number": 3, "val_accuracy": 0.85, "gflops": 2.0, "spec": "d"},  # dominated by b
        {"number": 4, "status": "infeasible", "gflops": 9.0, "spec": "e", "reason": "outside the constraints"},
        {"number": 5, "status": "failed", "reason": "TrainingDiverged", "spec": "f"},
        {"number": 6, "status": "running", "state": "running", "spec": "g"},
    ], constraints={"max_gflops": 5.0})
    report = build_report(study)
    assert list(report.trials.columns) == [*TRIAL_COLUMNS, *ADDED_COLUMNS]
    assert report.trials["rank"].tolist()[:4] == [1, 1, 1, 2] and report.trials["rank"].iloc[4:].isna().all()
    assert report.front["number"].tolist() == [2, 1, 0]  # cheapest first
    assert report.counts == {"trained": 4, "stopped": 0, "infeasible": 1, "duplicate": 0, "failed": 1, "running": 1,
                             "waiting": 0}
    assert report.best["number"] == 0 and report.tied["number"] == 1
    low, high = wilson_interval(890, 1000)
    assert (report.trials.loc[1, "val_low"] == pytest.approx(low)
            and report.trials.loc[1, "val_high"] == pytest.approx(high))
    # Reference (accuracy 0, the max_gflops constraint 5): 0.8 x 4.5 + (0.89 - 0.8) x 4 + (0.90 - 0.89) x 1.
    assert report.hypervolume == pytest.approx(0.8 * 4.5 + 0.09 * 4 + 0.01 * 1)
    assert report.reference.origin["gflops"] == "the constraint on gflops" and report.reference.comparable
    assert report.trials["hypervolume_so_far"].tolist() == pytest.approx(
        [0.9 * 1, 0.9 * 1 + 0.89 * 3, 0.8 * 4.5 + 0.09 * 4 + 0.01, *[0.8 * 4.5 + 0.09 * 4 + 0.01] * 4])


def test_baselines_are_named_and_marked_on_the_front():
    study = make_trials([
        {"number": 0, "val_accuracy": 0.90, "gflops": 4.0, "baseline": "resnet20",
         "spec": "block=basic,layers=3-3-3,stem=cifar,stem_width=16,shortcut=A,in_channels=1,num_classes=10"},
        {"number": 1, "val_accuracy": 0.80, "gflops": 1.0,
         "spec": "block=basic,layers=1-1,stem=cifar,stem_width=8,in_channels=1,num_classes=10"},
    ])
    rows = front_rows(build_report(study))
    assert [r["network"] for r in rows] == ["block=basic,layers=1-1,stem=cifar,stem_width=8", "resnet20 (baseline)"]
    assert rows[1]["val acc [95% CI]"] == "90.00% [88.0, 91.7]" and rows[0]["GFLOPs"] == "1.0000"
    assert '<tr class="baseline"><td>0</td>' in html_table(rows, "front", "network")
    assert html_table(rows, "front", "network").count('class="baseline"') == 1  # the sampled network is not one


def test_a_baseline_off_the_front_is_shown_under_it_and_measured_against_the_search(capsys, monkeypatch):
    study = make_trials([
        {"number": 0, "val_accuracy": 0.80, "gflops": 4.0, "baseline": "resnet20",
         "spec": "block=basic,layers=3-3-3,stem=cifar,stem_width=16,shortcut=A,in_channels=1,num_classes=10"},
        {"number": 1, "val_accuracy": 0.90, "gflops": 1.0,
         "spec": "block=bottleneck,layers=1-2-1,stem=cifar,stem_width=8,groups=2,width_per_group=32,shortcut=C"},
    ])
    report = build_report(study)
    assert front_rows(report)[0]["#"] == "1" and len(front_rows(report)) == 1
    assert [r["network"] for r in baselines_off_front(report)] == ["resnet20 (baseline, not on the front)"]
    assert [names_a_baseline(r["network"]) for r in [*front_rows(report), *baselines_off_front(report)]] == [
        False] * len(front_rows(report)) + [True]  # set in bold under the front
    versus = dict(summary_lines(report))["vs resnet20"]
    assert "10.00 points more accurate" in versus and "4x fewer GFLOPs" in versus
    # At 80 columns the spec wraps between its fields only: every field of it is whole on some line.
    from resnet_bench.cli.output import print_front
    from resnet_bench.report.text import wrappable

    monkeypatch.setenv("COLUMNS", "80")
    print_front(report)
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 80 and "resnet20 (baseline," in out and "not on the front)" in out
    for field in ("block=bottleneck,", "layers=1-2-1,", "width_per_group=32,", "shortcut=C"):
        assert any(field in line for line in out.replace(", ", ",").splitlines()), (field, out)
    assert wrappable("#1 block=basic,layers=1-2-1,stem=cifar: 90% at 2,886 s, 1,024 images") == \
        "#1 block=basic, layers=1-2-1, stem=cifar: 90% at 2,886 s, 1,024 images"  # numbers keep their commas
    # The page: a network breaks after a comma only, never inside `layers=1-2-1`.
    cell = html_table(front_rows(report), "front", "network")
    assert '<span class="item">layers=1-2-1</span>,<wbr><span class="item">stem=cifar</span>' in cell


def test_the_charts_number_the_front_name_the_baseline_and_count_trained_trials(tmp_path, monkeypatch):
    from resnet_bench.report import plots

    figures = []
    made = plots._figure
    monkeypatch.setattr(plots, "_figure", lambda *a, **k: figures.append(made(*a, **k)) or figures[-1])
    study = make_trials([
        {"number": 0, "val_accuracy": 0.80, "gflops": 4.0, "baseline": "resnet20", "spec": "r"},
        {"number": 1, "status": "infeasible", "gflops": 9.0, "spec": "big", "reason": "outside the constraints"},
        {"number": 2, "status": "duplicate", "spec": "x", "reason": "a duplicate of #3"},
        {"number": 3, "val_accuracy": 0.90, "gflops": 1.0, "spec": "x"},
        {"number": 4, "val_accuracy": 0.70, "gflops": 0.5, "spec": "y"},
    ])
    report = build_report(study)
    plots.pareto_chart(report, tmp_path / "pareto.png")
    plots.hypervolume_chart(report, tmp_path / "hypervolume.png")
    (_, pareto), (_, (curve, spent)) = figures
    assert {t.get_text() for t in pareto.texts} >= {"#3", "#4", "resnet20"}
    assert "baseline (the study's base recipe)" in pareto.get_legend_handles_labels()[1]
    assert pareto.get_title().startswith("published results: none")  # cifar10 has them: none fit yet
    # The note and the legend sit outside the axes, inside the picture: they hide no point, interval or axis.
    figure = pareto.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes_box, picture = pareto.get_window_extent(renderer), figure.bbox
    for outside in (figure.legends[0].get_window_extent(renderer), pareto.title.get_window_extent(renderer)):
        assert not outside.overlaps(axes_box)
        assert picture.x0 <= outside.x0 and outside.x1 <= picture.x1 and picture.y0 <= outside.y0 <= picture.y1
    x, y = curve.lines[0].get_xdata(), curve.lines[0].get_ydata()
    assert list(x) == [1, 2, 3]  # three trained trials: the infeasible and the duplicate are not on the x axis
    trained = report.trials[report.trials["number"].isin([0, 3, 4])]
    assert list(y) == pytest.approx(trained["hypervolume_so_far"].tolist()) and y[-1] == report.hypervolume
    assert curve.get_ylim()[0] == 0 and curve.get_ylabel().endswith("(accuracy x GFLOPs)")
    assert not spent.lines  # no trial stored its training seconds: nothing to draw against them, and no error


def test_the_summary_says_why_a_study_shows_no_published_points():
    study = make_trials([{"number": 0, "val_accuracy": 0.8, "gflops": 1.0, "spec": "a"}])
    study.dataset = "fashion-mnist-mini"
    said = dict(summary_lines(build_report(study)))["published"]
    assert said.startswith("none: the package's table of published results has cifar10, cifar100, fashion-mnist")
    assert "not fashion-mnist-mini" in said


def test_reference_point_from_the_file_else_documented_else_the_data():
    trained = pd.DataFrame({"val_accuracy": [0.5, 0.7], "params": [100.0, 300.0]})
    objectives = (("val_accuracy", "maximize"), ("params", "minimize"))
    given = make_trials([], objectives, reference_point={"params": 1000.0})
    assert resolve_reference(given, trained).point == {"val_accuracy": 0.0, "params": 1000.0}
    assert resolve_reference(given, trained).comparable
    from_data = resolve_reference(make_trials([], objectives), trained)
    assert from_data.point == {"val_accuracy": 0.0, "params": pytest.approx(330.0)}
    assert not from_data.comparable and "not comparable" in from_data.origin["params"]
    assert resolve_reference(make_trials([], objectives), trained.iloc[:0]) is None


def test_bad_reference_point_in_a_study_file_names_the_key(tmp_path):
    bad = TINY_STUDY + "\n[report]\nreference_point = { gflops = 1.0 }\n"
    with pytest.raises(StudyFileError, match="report.reference_point.gflops is not a study key.*val_accuracy, params"):
        load_study_file(write(tmp_path, bad))
    with pytest.raises(StudyFileError, match="report.reference_point.params='x'.*finite number"):
        load_study_file(write(tmp_path, TINY_STUDY + '\n[report]\nreference_point = { params = "x" }\n'))


def test_published_points_match_the_data_set_exactly_with_our_costs():
    cifar = published_points("cifar10", in_channels=3, num_classes=10, input_size=32)
    resnet20 = cifar[cifar["model"] == "resnet20"].iloc[0]
    # He et al. 2015 Table 6: 8.75% error; our profiler: 40,551,104 multiply-adds, 269,722 parameters.
    assert resnet20["accuracy"] == pytest.approx(0.9125) and resnet20["params"] == 269_722
    assert resnet20["gflops"] == pytest.approx(0.040551, abs=1e-6) and "1512.03385" in resnet20["source"]
    assert {"resnext29_8x64d", "wrn28_10", "resnet110"} <= set(cifar["model"])
    fashion = published_points("fashion-mnist", in_channels=1, num_classes=10, input_size=28)
    assert set(fashion["model"]) == {"wrn40_4", "wrn28_10", "resnet18"}
    wrn = fashion[fashion["model"] == "wrn28_10"].iloc[0]
    assert wrn["params"] == 36_479_194 - 3 * 3 * 2 * 16  # the same network with a grey input: 2 channels fewer
    assert published_points("fashion-mnist-mini", in_channels=1, num_classes=10, input_size=28).empty


def test_published_points_off_their_native_geometry_import_no_torch():
    # A grey 28-pixel input and 100 classes differ from every preset's own: the costs come from
    # tables/reference_costs.csv, not from a trace.
    code = ("import sys; from resnet_bench.report.references import published_points; "
            "f = published_points('fashion-mnist', in_channels=1, num_classes=10, input_size=28); "
            "c = published_points('cifar100', in_channels=3, num_classes=100, input_size=32); "
            "assert len(f) and len(c) and f['gflops'].notna().all() and c['gflops'].notna().all(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'fvcore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_report_maths_imports_neither_optuna_nor_torch():
    code = ("import sys, resnet_bench.report.analysis, resnet_bench.report.export, resnet_bench.report.text; "
            "print(sorted(m for m in ('optuna', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the report of a real sweep ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real small sweep on the bundled Fashion-MNIST subset: the resnet20 baseline and 3 sampled networks."""
    folder = tmp_path_factory.mktemp("report")
    path = write(folder, TINY_STUDY.replace("n_trials = 2", "n_trials = 4").replace(
        "stem_width = [4, 8]", "stem_width = [4, 8, 16]"))
    storage = f"sqlite:///{folder / 'study.db'}"
    assert main(["sweep", str(path), "--storage", storage, "--device", "cpu", "--format", "json"]) == 0
    return path, storage, folder


def dominates(a, b, directions) -> bool:
    better = [x > y if d == "maximize" else x < y for x, y, d in zip(a, b, directions)]
    worse = [x < y if d == "maximize" else x > y for x, y, d in zip(a, b, directions)]
    return any(better) and not any(worse)


@pytest.mark.slow
def test_report_of_a_real_sweep(swept, capsys):
    path, storage, folder = swept
    out_dir = folder / "out"  # --out: the folder of studies; the report goes to out/<study>/
    code, out, err = run(capsys, "report", str(path), "--storage", storage, "--out", str(out_dir))
    assert code == 0, err
    assert all((out_dir / "tiny" / name).stat().st_size > 0 for name in FILES)
    assert "Pareto front of tiny, cheapest first" in out and "cheapest tie" in out
    wrote = " ".join(out[out.index("Wrote "):].split())  # wrapped at the terminal's width, between names
    assert wrote == f"Wrote {len(FILES)} files to {out_dir / 'tiny'}/: " + ", ".join(FILES)

    # The front printed equals the non-dominated set recomputed here from Optuna's own records.
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    trained = [t for t in trials if t.user_attrs.get("status") == "trained"]
    assert len(trained) == 4
    values = {t.number: (t.user_attrs["val_accuracy"], t.user_attrs["params"]) for t in trained}
    expected = {n for n, v in values.items() if not any(dominates(w, v, MAX_MIN) for w in values.values())}
    front = pd.read_csv(out_dir / "tiny" / "front.csv")
    assert set(front["number"]) == expected and front["params"].is_monotonic_increasing
    # Under the front, a baseline it leaves out (so the search reads against it), and nothing else.
    baselines = {t.number for t in trained if t.user_attrs.get("baseline")}
    shown = [int(m) for m in re.findall(r"^│ +(\d+) │", out, re.M)]
    assert set(shown[:len(expected)]) == expected and set(shown[len(expected):]) == baselines - expected

    # trials.csv round-trips through pandas: every trial, its rank, the values stored in the study.
    table = pd.read_csv(out_dir / "tiny" / "trials.csv")
    assert sorted(table["number"]) == [t.number for t in trials]
    for t in trials:
        row = table[table["number"] == t.number].iloc[0]
        assert row["status"] == t.user_attrs["status"] and row["params"] == t.user_attrs["params"]
        if t.number in values:
            assert row["val_accuracy"] == t.user_attrs["val_accuracy"]
            assert (row["rank"] == 1) == (t.number in expected) and bool(row["on_front"]) == (t.number in expected)
            assert row["val_low"] <= row["val_accuracy"] <= row["val_high"]
        elif row["status"] == "duplicate":  # not trained again: the values of the trial it repeats, never ranked
            assert pd.isna(row["rank"]) and row["val_accuracy"] == t.user_attrs["val_accuracy"]
        else:
            assert pd.isna(row["rank"]) and pd.isna(row["val_accuracy"])
    assert table["hypervolume_so_far"].is_monotonic_increasing
    assert table.loc[table["number"] == 0, ["baseline", "is_baseline"]].values.tolist() == [["resnet20", True]]

    # --format json and csv print the same trials with their ranks, and nothing else.
    code, out, err = run(capsys, "report", str(path), "--storage", storage, "--out", str(out_dir), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["number"] for r in rows] == sorted(table["number"].tolist())
    assert {r["number"] for r in rows if r["rank"] == 1} == expected and all("val_low" in r for r in rows)
    code, out, err = run(capsys, "report", str(path), "--storage", storage, "--out", str(out_dir), "--format", "csv")
    assert code == 0 and pd.read_csv(StringIO(out))["rank"].equals(pd.read_csv(out_dir / "tiny" / "trials.csv")["rank"])

    markdown = (out_dir / "tiny" / "report.md").read_text()
    assert "## Pareto front" in markdown and "![Validation accuracy against GFLOPs](pareto.png)" in markdown


@pytest.mark.slow
def test_report_of_a_study_still_running(swept, capsys, tmp_path):
    _, storage, folder = swept
    copy = tmp_path / "running.db"
    shutil.copy(folder / "study.db", copy)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{copy}")
    study.ask()  # a trial that a worker is training now
    code, out, err = run(capsys, "report", "--storage", f"sqlite:///{copy}", "--out", str(tmp_path / "r"),
                         "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["status"] for r in rows].count("running") == 1 and rows[-1]["rank"] is None


@pytest.mark.slow
def test_report_html_in_a_real_browser(swept, tmp_path, capsys):
    """Headless Chromium renders report.html: the front table is in the DOM and both embedded images decoded."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is needed: apt-get install chromium (.ci/run installs it)"
    path, storage, _ = swept
    code, _, err = run(capsys, "report", str(path), "--storage", storage, "--out", str(tmp_path))
    assert code == 0, err
    page = (tmp_path / "tiny" / "report.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page  # nothing to fetch
    # A probe appended to a copy of the page writes what the browser decoded into the DOM once the page loaded.
    probe = ("<script>addEventListener('load', () => { const out = document.createElement('pre'); out.id = 'probe';"
             "out.textContent = JSON.stringify([...document.images].map(i => [i.id, i.complete, i.naturalWidth,"
             " i.naturalHeight])); document.body.append(out); });</script>")
    probed = tmp_path / "tiny" / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    decoded = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    assert [(i, complete) for i, complete, *_ in decoded] == [("pareto", True), ("hypervolume", True)]
    # 8 x 5 inches at 144 dpi; the hypervolume's two panels 12 x 5
    assert [(w, h) for _, _, w, h in decoded] == [(1152, 720), (1728, 720)]
    front = re.search(r'<table id="front">(.*?)</table>', dom, re.S).group(1)
    front_numbers = [int(n) for n in re.findall(r"<tr[^>]*><td>(\d+)</td>", front)]
    on_front = pd.read_csv(tmp_path / "tiny" / "front.csv")["number"].tolist()
    trials = pd.read_csv(tmp_path / "tiny" / "trials.csv")
    off = trials[trials["is_baseline"] & (trials["status"] == "trained") & ~trials["on_front"]]["number"].tolist()
    assert front_numbers == on_front + off  # the front, then the baselines it leaves out
    assert re.search(r'<dl id="summary">.*best accuracy', dom, re.S)
    for match in re.finditer(r'src="data:image/png;base64,([^"]+)"', page):
        assert base64.b64decode(match.group(1)).startswith(b"\x89PNG")


# -- bad input -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["--storage", "nosuchdb://nowhere", "--study-name", "x"], ["--storage 'nosuchdb://nowhere' is not a storage URL"]),
    (["--storage", "sqlite:///{tmp}/missing.db", "--study-name", "x"], ["there is no file", "resnet-bench sweep"]),
    (["--format", "xml"], ["--format 'xml' is not accepted", "table, json, csv"]),
])
def test_bad_report_input_is_one_line_and_exit_2(capsys, tmp_path, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, "report", *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "missing.db").exists()  # reading never creates a storage


@pytest.mark.parametrize("tables", [[], ["CREATE TABLE notes (text)"]])
@pytest.mark.parametrize("command", ["report", "confirm"])
def test_reading_an_empty_or_foreign_sqlite_file_changes_nothing(capsys, tmp_path, tables, command):
    import sqlite3

    path = tmp_path / "other.db"
    path.touch()
    with sqlite3.connect(path) as db:
        for statement in tables:
            db.execute(statement)
    before = path.read_bytes()
    code, _, err = run(capsys, command, "--storage", f"sqlite:///{path}", "--out", str(tmp_path / "out"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not an Optuna storage; it was left untouched" in err
    assert path.read_bytes() == before and not (tmp_path / "out").exists()


def test_no_such_study_lists_the_studies_there(capsys, tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    for name in ("alpha", "beta"):
        optuna.create_study(study_name=name, storage=storage)
    code, out, err = run(capsys, "report", "--storage", storage, "--study-name", "gamma")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "no study 'gamma'" in err and "alpha, beta" in err
    code, out, err = run(capsys, "report", "--storage", storage)  # two studies: which one?
    assert code == 2 and "--study-name is needed" in err and "alpha, beta" in err


def test_an_output_folder_that_cannot_be_written(capsys, tmp_path):
    config = load_study_file(write(tmp_path, TINY_STUDY))
    storage = f"sqlite:///{tmp_path / 'e.db'}"
    open_study(config, storage)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = run(capsys, "report", "--storage", storage, "--out", str(blocker / "sub"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"the folder '{blocker / 'sub' / 'tiny'}' cannot be written" in err and "--out" in err


def test_an_empty_study_prints_an_empty_front_and_exits_0(capsys, tmp_path):
    config = load_study_file(write(tmp_path, TINY_STUDY))
    storage = f"sqlite:///{tmp_path / 'e.db'}"
    open_study(config, storage)  # made, its baseline waiting, nothing trained
    code, out, err = run(capsys, "report", str(tmp_path / "study.toml"), "--storage", storage,
                         "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "The front is empty" in out and "1 waiting" in out
    assert all((tmp_path / "r" / "tiny" / name).exists() for name in FILES)
    assert pd.read_csv(tmp_path / "r" / "tiny" / "front.csv").empty
    code, out, _ = run(capsys, "report", "--storage", storage, "--out", str(tmp_path / "r"), "--format", "json")
    assert code == 0 and [r["status"] for r in json.loads(out)] == ["waiting"]


def test_three_objectives_rank_and_measure_over_all_three(tmp_path):
    objectives = (("val_accuracy", "maximize"), ("gflops", "minimize"), ("params", "minimize"))
    study = make_trials([
        {"number": 0, "val_accuracy": 0.9, "gflops": 2.0, "params": 100, "spec": "a"},
        {"number": 1, "val_accuracy": 0.8, "gflops": 1.0, "params": 300, "spec": "b"},
        {"number": 2, "val_accuracy": 0.8, "gflops": 2.0, "params": 300, "spec": "c"},  # dominated by a and b
    ], objectives, reference_point={"gflops": 4.0, "params": 400.0})
    report = build_report(study, published_points("cifar10", in_channels=3, num_classes=10, input_size=32))
    assert report.trials["rank"].tolist() == [1, 1, 2] and report.front["number"].tolist() == [1, 0]
    # Boxes from (0, 4, 400): a 0.9 x 2 x 300 = 540, b 0.8 x 3 x 100 = 240, overlap 0.8 x 2 x 100 = 160.
    assert report.hypervolume == pytest.approx(540 + 240 - 160)
    paths = write_report(report, tmp_path)
    markdown = paths["report.md"].read_text()
    assert "## Published results on cifar10" in markdown and "| resnet110 | 93.57% |" in markdown
    assert pd.read_csv(paths["front.csv"])["number"].tolist() == [1, 0]


def test_early_stopping_in_the_summary_by_hand():
    study = make_trials([
        {"number": 0, "val_accuracy": 0.90, "gflops": 4.0, "spec": "a", "epochs": 6, "recipe_epochs": 6,
         "train_seconds": 60.0},
        # 10 s for 1 of 6 epochs: 5 epochs of 10 s skipped; 30 s for 3 of 6: 3 of 10 s; 4 s for 1 of 6: 5 of 4 s.
        {"number": 1, "status": "stopped", "val_accuracy": 0.95, "gflops": 1.0, "spec": "b", "epochs": 1,
         "recipe_epochs": 6, "train_seconds": 10.0},
        {"number": 2, "status": "stopped", "val_accuracy": 0.70, "gflops": 2.0, "spec": "c", "epochs": 3,
         "recipe_epochs": 6, "train_seconds": 30.0},
        {"number": 3, "status": "stopped", "val_accuracy": 0.60, "gflops": 0.5, "spec": "d", "epochs": 1,
         "recipe_epochs": 6, "train_seconds": 4.0},
    ])
    report = build_report(study)
    assert report.stopped_at == {1: 2, 3: 1} and report.saved_seconds == pytest.approx(50 + 30 + 20)
    assert report.front["number"].tolist() == [0]  # a stopped trial is never on the front, however good its rung
    line = dict(summary_lines(report))["early stopping"]
    assert line.startswith("3 trials stopped at a rung (2 after epoch 1, 1 after epoch 3); about 100 s of training")
    assert "early stopping" not in dict(summary_lines(build_report(make_trials([study.trials.iloc[0].to_dict()]))))


def test_numbers_and_counts_as_people_read_them():
    from resnet_bench.units import cost_text, gflops_cell, metric_value, plural, saving_text

    assert [plural(1, "network"), plural(2, "network"), plural(1234, "epoch")] == ["1 network", "2 networks",
                                                                                   "1,234 epochs"]
    assert plural(2, "study", "studies") == "2 studies"
    assert metric_value("params", 902106.0) == "902,106" and metric_value("gflops", 0.030821248) == "0.03082"
    assert cost_text("params", 38266) == "38,266 params" and cost_text("latency_ms", 12.34) == "12.34 ms latency"
    assert saving_text("gflops", 3.1649) == "3.16x fewer GFLOPs" and saving_text("latency_ms", 2) == "2x less latency"
    # A table's GFLOPs: four decimals, a CIFAR network's three significant digits and an ImageNet one's alike.
    assert [gflops_cell(0.040813), gflops_cell(4.23048), gflops_cell(16)] == ["0.0408", "4.2305", "16.0000"]


def test_the_summary_says_whether_the_search_beat_each_baseline():
    best = np.arange(1000) < 900
    study = make_trials([
        {"number": 0, "val_accuracy": 0.900, "gflops": 4.0, "spec": "a", "baseline": "resnet20"},
        {"number": 1, "val_accuracy": 0.890, "gflops": 1.0, "spec": "b"},
        {"number": 2, "val_accuracy": 0.896, "gflops": 2.0, "spec": "c"},
        {"number": 3, "val_accuracy": 0.950, "gflops": 5.0, "spec": "d"},  # more accurate, but costlier
        {"number": 4, "val_accuracy": 0.500, "gflops": 0.1, "spec": "e", "baseline": "tiny"},
    ])
    study.val_correct = {0: pack_correct(best), 1: pack_correct(_flipped(best, range(15), range(900, 905))),
                         2: pack_correct(_flipped(best, range(20, 28), range(910, 914))), 3: pack_correct(best),
                         4: pack_correct(best)}
    lines = dict(summary_lines(build_report(study)))
    assert lines["vs resnet20"] == ("90.00% at 4 GFLOPs; the search's most accurate network at no more gflops, #2, is "
                                    "0.40 points less accurate (McNemar's exact test: p = 0.39), at 2x fewer GFLOPs")
    assert lines["vs tiny"] == "50.00% at 0.1 GFLOPs; no searched network is as cheap"


def test_hypervolume_against_training_seconds_by_hand():
    # Ended in the order 1, 0, 2, 3 (completion times), #1 stopped at a rung: its seconds count, its point does not.
    # Reference (0, 4): #0 (0.5, 2) dominates 0.5 x 2 = 1.0; #2 (0.8, 3) adds (0.8 - 0.5) x 1 = 0.3; #3 (0.9, 1)
    # dominates both: 0.9 x 3 = 2.7.
    study = make_trials([
        {"number": 0, "val_accuracy": 0.5, "gflops": 2.0, "train_seconds": 30.0, "completed": "2026-01-01T00:02:00"},
        {"number": 1, "status": "stopped", "val_accuracy": 0.9, "gflops": 0.5, "train_seconds": 10.0,
         "completed": "2026-01-01T00:01:00"},
        {"number": 2, "val_accuracy": 0.8, "gflops": 3.0, "train_seconds": 40.0, "completed": "2026-01-01T00:03:00"},
        {"number": 3, "val_accuracy": 0.9, "gflops": 1.0, "train_seconds": 20.0, "completed": "2026-01-01T00:04:00"},
        {"number": 4, "status": "infeasible", "gflops": 9.0, "reason": "outside the constraints"},
        # #3 proposed again: it carries #3's measurements, train_seconds among them, but trained nothing.
        {"number": 5, "status": "duplicate", "val_accuracy": 0.9, "gflops": 1.0, "train_seconds": 20.0,
         "completed": "2026-01-01T00:05:00"},
    ], reference_point={"val_accuracy": 0.0, "gflops": 4.0})
    curve = build_report(study).by_seconds
    assert curve["seconds"].tolist() == [10.0, 40.0, 80.0, 100.0]
    assert build_report(study).train_seconds == 100.0
    assert curve["hypervolume"].tolist() == pytest.approx([0.0, 1.0, 1.3, 2.7])
    assert summary(build_report(study))["hypervolume_by_train_seconds"][-1] == [100.0, pytest.approx(2.7)]
    # No reference point can be made without a trained trial: no curve, and no error.
    study.trials = study.trials[study.trials["number"] == 4]
    assert build_report(study).by_seconds.empty


def test_the_wall_time_of_a_run_leaves_out_its_pause_between_commands():
    # Two workers from 10:00; #0 ends 10:30, #1 runs 10:10-10:40; interrupted, resumed at 11:00, #2 runs to 11:20.
    study = make_trials([
        {"number": 0, "val_accuracy": 0.5, "gflops": 2.0, "started": "2026-01-01T10:00:00",
         "completed": "2026-01-01T10:30:00"},
        {"number": 1, "val_accuracy": 0.6, "gflops": 3.0, "started": "2026-01-01T10:10:00",
         "completed": "2026-01-01T10:40:00"},
        {"number": 2, "val_accuracy": 0.7, "gflops": 4.0, "started": "2026-01-01T11:00:00",
         "completed": "2026-01-01T11:20:00"},
        {"number": 3, "status": "running", "started": "2026-01-01T11:20:00"},  # no end yet: not counted
    ])
    report = build_report(study)
    assert (report.wall_seconds, report.running_seconds) == (80 * 60, 60 * 60)
    assert dict(summary_lines(report))["wall time"] == (
        "1 h 20 min from the first trial's start to the last one's end, 1 h 00 min of it with a trial running "
        "(paused 20 min: between commands)")
    study.trials = study.trials[study.trials["number"] < 2]  # one command, no pause
    assert dict(summary_lines(build_report(study)))["wall time"] == (
        "40 min from the first trial's start to the last one's end")
