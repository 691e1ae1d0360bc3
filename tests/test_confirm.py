"""`confirm`: the front and the baselines re-trained with more seeds, stored with the study, resumed after a crash;
Kendall's tau by hand; bad input."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from resnet_bench.correctness import unpack_correct
from resnet_bench.report.analysis import build_report
from resnet_bench.report.confirmation import NETWORK_FIELDS, confirmation
from resnet_bench.report.stats import kendall_tau
from resnet_bench.search import confirm as confirm_module
from resnet_bench.search.config import load_study_file
from resnet_bench.search.records import TRIAL_COLUMNS, StudyTrials, TrialRecord
from resnet_bench.search.storage import locate_study
from resnet_bench.search.study import open_study
from resnet_bench.units import plural

from .helpers import TINY_STUDY, run, write

# Two tiny networks per sweep, no baseline: each run trains in seconds.
SMALL = TINY_STUDY.replace('baselines = ["resnet20"]', "baselines = []").replace("width_multiplier = [1, 64]",
                                                                                  "width_multiplier = 1")


def test_kendall_tau_by_hand():
    # Pairs of (1, 2, 3, 4) against (1, 3, 2, 4): five agree, one disagrees: (5 - 1) / 6.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    # Ties (tau-b): x ties one pair, y another; 4 concordant, 0 discordant, 5 untied pairs each: 4 / 5.
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert kendall_tau([0.5, 0.5], [0.1, 0.2]) is None  # no order to compare
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1, 2, 3])


def _run(number: int, seed: int, val: float, test: float) -> TrialRecord:
    return TrialRecord(status="trained", confirms=number, seed=seed, split_seed=0, spec=f"net{number}", epochs=6,
                       val_accuracy=val, test_accuracy=test, val_images=1000)


def test_confirmation_table_and_tau_of_a_hand_made_case():
    rows = [{"number": n, "status": "trained", "state": "complete", "baseline": "", "spec": f"net{n}",
             "val_accuracy": v, "gflops": g, "is_baseline": False}
            for n, v, g in ((0, 0.90, 3.0), (1, 0.80, 2.0), (2, 0.70, 1.0))]
    study = StudyTrials(name="hand", storage="sqlite:///nowhere.db",
                        objectives=(("val_accuracy", "maximize"), ("gflops", "minimize")), dataset="x",
                        constraints={}, reference_point={},
                        trials=pd.DataFrame.from_records(rows, columns=list(TRIAL_COLUMNS)))
    # Confirmed means: net0 0.85, net1 0.86, net2 0.60. Search order 0 > 1 > 2; confirmed 1 > 0 > 2: of the three
    # pairs, (0, 1) disagrees and the other two agree: tau = (2 - 1) / 3.
    study.confirm_runs = [_run(0, 1, 0.84, 0.83), _run(0, 2, 0.86, 0.85), _run(1, 1, 0.86, 0.84),
                          _run(1, 2, 0.86, 0.86), _run(2, 1, 0.60, 0.61), _run(2, 2, 0.60, 0.59)]
    result = confirmation(study)
    assert result.kendall_tau == pytest.approx(1 / 3)
    doc = result.to_dict()
    assert set(doc) == {"kendall_tau", "networks"} and [n["number"] for n in doc["networks"]] == [2, 1, 0]
    net0 = doc["networks"][2]
    assert set(net0) == set(NETWORK_FIELDS) and net0["seeds"] == [1, 2] and net0["search_val_accuracy"] == 0.90
    assert (net0["val_accuracy_mean"] == pytest.approx(0.85)
            and net0["val_accuracy_std"] == pytest.approx(0.01414, abs=1e-5))
    assert doc["networks"][1]["val_accuracy_std"] == 0.0
    # The confirmed front: net1 (0.86 at 2 GFLOPs) now dominates net0 (0.85 at 3); net2 is the cheapest.
    assert result.networks.set_index("number")["confirmed_front"].to_dict() == {2: True, 1: True, 0: False}
    report = build_report(study)
    assert report.confirmed is not None and "Kendall's tau +0.33" in dict(_summary(report))["confirmed"]


def _summary(report):
    from resnet_bench.report.text import summary_lines

    return summary_lines(report)


@pytest.mark.slow
def test_confirm_retrains_the_front_stores_each_seed_and_resumes(tmp_path, capsys, monkeypatch):
    study_file = write(tmp_path, SMALL)
    out = str(tmp_path / "reports")
    code, _, err = run(capsys, "sweep", str(study_file), "--out", out, "--device", "cpu", "--format", "json")
    assert code == 0, err
    location = locate_study("tiny", out=out)
    front = build_report(_load(location)).front["number"].tolist()
    assert front

    # A crash after the first run: that run is stored, the next command trains only the others.
    calls = []

    def crash_after_first(run, record):
        calls.append(run.key)
        raise KeyboardInterrupt

    real = confirm_module.confirm
    monkeypatch.setattr(confirm_module, "confirm",
                        lambda *a, **k: real(*a, **{**k, "on_run_end": crash_after_first}))
    code, _, _ = run(capsys, "confirm", str(study_file), "--out", out, "--seeds", "2", "--device", "cpu",
                     "--workers", "1")
    assert code == 130 and len(calls) == 1
    monkeypatch.setattr(confirm_module, "confirm", real)

    # The rest, and a third seed, on two worker processes: each returns its record, this process stores it.
    code, doc, err = run(capsys, "confirm", str(study_file), "--out", out, "--seeds", "3", "--device", "cpu",
                         "--format", "json", "--workers", "2")
    assert code == 0, err
    left = 3 * len(front) - 1
    assert (f"{plural(left, 'run')} to train (1 stored already) on "
            f"{plural(min(2, left), 'worker process', 'worker processes')} of 1 thread each") in err
    doc = json.loads(doc)
    assert sorted(n["number"] for n in doc["networks"]) == sorted(front)
    assert all(n["seeds"] == [1, 2, 3] and n["epochs"] == 1 for n in doc["networks"])
    storage = optuna.storages.RDBStorage(location.storage)
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name("tiny"))
    runs = confirm_module.stored_runs(attrs)
    assert len(runs) == 3 * len(front)  # one result per network and seed, the crashed command's first one kept
    for r in runs:
        assert r.split_seed == 0 and r.seed in (1, 2, 3) and r.recipe["seed"] == r.seed and r.val_images == 500
        assert unpack_correct(r.val_correct, 500).sum() == round(r.val_accuracy * 500)
    for n in doc["networks"]:
        mine = [r.val_accuracy for r in runs if r.confirms == n["number"]]
        assert n["val_accuracy_mean"] == pytest.approx(sum(mine) / 3)
    assert not list(location.states.glob("confirm-*"))  # no training state left behind

    # Again: nothing to train; the report shows the confirmed networks and the tau.
    code, out_text, _ = run(capsys, "confirm", str(study_file), "--out", out, "--seeds", "3", "--device", "cpu")
    assert code == 0 and f"0 runs trained, {3 * len(front)} found stored already" in " ".join(out_text.split())
    # A refused confirm changes nothing stored: the report still shows the last confirmation that ran.
    code, _, err = run(capsys, "confirm", str(study_file), "--out", out, "--seeds", "4", "--epochs", "2",
                       "--device", "tpu")
    assert code == 2 and "tpu" in err and len(err.strip().splitlines()) == 1
    assert storage.get_study_user_attrs(storage.get_study_id_from_name("tiny"))[confirm_module.LAST_CONFIRM] == \
        attrs[confirm_module.LAST_CONFIRM]
    code, report_text, _ = run(capsys, "report", str(study_file), "--out", out)
    assert code == 0 and ("Confirmed: the front and the baselines re-trained for 1 epoch with seeds 1, 2, 3"
                          in report_text)
    assert "Kendall's tau" in (tmp_path / "reports" / "tiny" / "report.md").read_text()
    # The search itself is untouched: no trial was added, the sampler never sees a confirm run.
    assert len(_load(location).trials) == 2


def test_which_trials_are_confirmed_and_how_long_they_take_by_hand():
    from resnet_bench.cli.confirming import chosen_trials
    from resnet_bench.errors import BadInputError
    from resnet_bench.search.confirm import ConfirmRun, expected_seconds

    rows = [
        {"number": 0, "val_accuracy": 0.80, "gflops": 4.0, "baseline": "resnet20"},  # dominated by 1: off the front
        {"number": 1, "val_accuracy": 0.90, "gflops": 3.0},
        {"number": 2, "val_accuracy": 0.85, "gflops": 1.0},
        {"number": 3, "val_accuracy": 0.70, "gflops": 0.5},
        {"number": 4, "status": "stopped", "val_accuracy": 0.95, "gflops": 0.1},
    ]
    frame = pd.DataFrame.from_records(
        [{"status": "trained", "state": "complete", "baseline": "", "val_images": 1000, "spec": f"n{r['number']}", **r,
          "is_baseline": bool(r.get("baseline"))} for r in rows], columns=list(TRIAL_COLUMNS))
    report = build_report(StudyTrials(name="s", storage="", objectives=(("val_accuracy", "maximize"),
                                      ("gflops", "minimize")), dataset="cifar10", constraints={},
                                      reference_point={}, trials=frame))
    assert chosen_trials(report, "s") == [3, 2, 1, 0]  # the front cheapest first, then the baseline
    assert chosen_trials(report, "s", top=2) == [1, 2, 0]  # the two most accurate of the front, then the baseline
    assert chosen_trials(report, "s", trials="2, 0,2") == [2, 0]
    for bad, words in (("4", "4 of study 's' is not trained to the end"), ("x", "trial numbers separated by commas"),
                       ("9,4", "9, 4 of study 's' are not trained")):
        with pytest.raises(BadInputError, match=words):
            chosen_trials(report, "s", trials=bad)
    # Runs of 6, 6 and 3 epochs of trials that trained 10 s per epoch, 20 s per epoch and 10 s per epoch: 60, 120 and
    # 30 s; on two workers, longest first: 120 on one, 60 + 30 on the other: 120 s. On one: 210 s.
    records = {1: TrialRecord(train_seconds=100.0, epochs=10), 2: TrialRecord(train_seconds=120.0, epochs=6)}
    runs = [ConfirmRun(1, "", "a", {"epochs": 6}, 1), ConfirmRun(2, "", "b", {"epochs": 6}, 1),
            ConfirmRun(1, "", "a", {"epochs": 3}, 2)]
    assert expected_seconds(runs, records, 2) == pytest.approx(120.0)
    assert expected_seconds(runs, records, 1) == pytest.approx(210.0)
    assert expected_seconds(runs, {1: records[1]}, 2) is None  # a trial without its seconds: no guess


def _load(location):
    from resnet_bench.search.trials import load_trials

    return load_trials(location.storage, location.name)


def test_confirm_bad_input_is_one_line_exit_2(tmp_path, capsys):
    study_file = write(tmp_path, TINY_STUDY)
    out = str(tmp_path / "reports")
    code, _, err = run(capsys, "confirm", str(study_file), "--out", out)  # no study yet
    assert code == 2 and len(err.strip().splitlines()) == 1 and "sweep" in err
    location = locate_study("tiny", out=out)
    location.make_folder()
    open_study(load_study_file(str(study_file)), location.storage, "tiny")  # made, its baseline waiting, none trained
    code, _, err = run(capsys, "confirm", str(study_file), "--out", out)
    assert code == 2 and err.strip() == ("resnet-bench confirm: error: study 'tiny' has no trained trial to confirm: "
                                         "run `resnet-bench sweep` first")
    for flag, value in (("--seeds", "0"), ("--epochs", "-1"), ("--seeds", "two")):
        code, _, err = run(capsys, "confirm", str(study_file), "--out", out, flag, value)
        assert code == 2 and flag in err and len(err.strip().splitlines()) == 1
    # A study file that would measure otherwise than the stored study: refused, field by field.
    changed = write(tmp_path, TINY_STUDY.replace("val_size = 500", "val_size = 400"), "changed.toml")
    code, _, err = run(capsys, "confirm", str(changed), "--out", out)
    assert code == 2 and "val_size: 500 -> 400" in err
