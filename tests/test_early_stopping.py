"""MO-ASHA early stopping: the rungs, the promotion order checked by hand, and a sweep that stops trials at rungs."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pytest

from resnet_bench.search import early_stopping
from resnet_bench.search import sweep as sweep_module
from resnet_bench.search.config import StudyFileError, load_study_file
from resnet_bench.search.early_stopping import goes_on, promotion_order, rung_epochs
from resnet_bench.search.rungs import SweepRungs
from resnet_bench.train import EpochMetrics

from .helpers import TINY_STUDY, run, write

MAX_MIN = ["maximize", "minimize"]


def test_rungs_by_hand():
    assert rung_epochs(1, 3, 6) == (1, 3) and rung_epochs(1, 2, 6) == (1, 2, 4) and rung_epochs(2, 2, 16) == (2, 4, 8)
    assert rung_epochs(1, 3, 9) == (1, 3) and rung_epochs(3, 3, 3) == ()  # the last epoch is no rung


def test_promotion_order_mixed_directions_by_hand():
    # (accuracy up, GFLOPs down). Front: a (0.9, 2), b (0.8, 1), d (0.85, 1.5); c (0.7, 3) is dominated by all.
    # Scaled to [0, 1] and turned to minimisation: a (0, .5), b (.5, 0), d (.25, .25), c (1, 1). The epsilon-net
    # starts from the best accuracy (a), then takes the farthest from a: b (0.707) before d (0.354).
    points = [[0.9, 2.0], [0.8, 1.0], [0.7, 3.0], [0.85, 1.5]]
    assert promotion_order(points, MAX_MIN) == [0, 1, 3, 2]
    assert promotion_order([[2.0, 0.9], [1.0, 0.8], [3.0, 0.7], [1.5, 0.85]], ["minimize", "maximize"]) == [1, 0, 3, 2]
    # Six at the rung, eta 3: by the rule eta the top two (a and b) go on; by eta+1 (the default) the whole front.
    six = [*points, [0.6, 3.5], [0.65, 2.5]]
    assert [i for i in range(6) if goes_on(i, six, MAX_MIN, 3, "eta")] == [0, 1]
    assert [i for i in range(6) if goes_on(i, six, MAX_MIN, 3)] == [0, 1, 3]


def test_ties_keep_the_order_of_arrival():
    same = [[0.8, 1.0]] * 4
    assert promotion_order(same, MAX_MIN) == [0, 1, 2, 3]
    assert [goes_on(i, same, MAX_MIN, 2, "eta") for i in range(4)] == [True, True, False, False]
    assert [goes_on(i, same, MAX_MIN, 2) for i in range(4)] == [True, True, True, False]


def test_a_rung_with_fewer_than_eta_trials_stops_nobody():
    assert goes_on(0, [[0.5, 1.0]], MAX_MIN, 3)  # alone at its rung
    assert goes_on(1, [[0.6, 0.5], [0.5, 1.0]], MAX_MIN, 3)  # dominated, but two are too few to judge it
    assert not goes_on(2, [[0.6, 0.5], [0.55, 0.7], [0.5, 1.0]], MAX_MIN, 3)  # three: eta+1 keeps the top two
    assert goes_on(0, [[0.6, 0.5], [0.55, 0.7], [0.5, 1.0]], MAX_MIN, 3)


def test_a_trial_arriving_at_a_full_rung():
    nine = [[0.5 + 0.01 * i, 1.0 + 0.1 * i] for i in range(9)]  # one front of nine, accuracy against cost
    # A tenth that dominates everyone is first and goes on; one dominated by everyone stops.
    assert goes_on(9, [*nine, [0.99, 0.5]], MAX_MIN, 3)
    assert not goes_on(9, [*nine, [0.1, 9.0]], MAX_MIN, 3)
    # With ten at the rung, the rule eta promotes three: the best accuracy, the cheapest, and the middle of the front.
    ten = [*nine, [0.1, 9.0]]
    assert [i for i in range(10) if goes_on(i, ten, MAX_MIN, 3, "eta")] == [0, 4, 8]
    assert len([i for i in range(10) if goes_on(i, ten, MAX_MIN, 3)]) == 4  # eta+1, the default


@pytest.mark.parametrize("budget, words", [
    ('early_stopping = "hyperband"', ["budget.early_stopping='hyperband'", "mo-asha"]),
    ('early_stopping = "mo-asha"\nreduction_factor = 1', ["budget.reduction_factor=1", ">= 2"]),
    ('early_stopping = "mo-asha"\nmin_epochs = 3', ["budget.min_epochs=3", "before the recipe's last epoch (3)"]),
    ('early_stopping = "mo-asha"\nmin_epochs = 0', ["budget.min_epochs=0", ">= 1"]),
])
def test_bad_early_stopping_is_exit_2_in_one_line(capsys, tmp_path, budget, words):
    text = TINY_STUDY.replace("epochs = 1", "epochs = 3").replace("n_trials = 2", "n_trials = 2\n" + budget)
    with pytest.raises(StudyFileError):
        load_study_file(write(tmp_path, text))
    code, out, err = run(capsys, "sweep", str(write(tmp_path, text)), "--dry-run")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_the_shipped_early_stopping_study_has_rungs_before_six_epochs():
    config = load_study_file("quickstart_mo_asha")
    assert config.early_stopping == "mo-asha" and config.base_recipe().epochs >= 6
    assert rung_epochs(config.min_epochs, config.reduction_factor, config.base_recipe().epochs) == (1, 3)
    quickstart = load_study_file("quickstart")
    assert config.space == quickstart.space and config.dataset == quickstart.dataset


@pytest.fixture
def curves(monkeypatch):
    """Training stood in for by learning curves that depend on the network's width: the callback sees each epoch
    as the trainer would show it, and may stop the run."""
    def fake_train(model, data, recipe, device, *, callback=None, state_path=None, on_resume=None, **kwargs):
        assert callable(on_resume)  # the sweep hears of a resumed trial's restored epochs (see the resume test)
        width = sum(p.numel() for p in model.parameters())
        history = []
        for epoch in range(1, recipe.epochs + 1):
            accuracy = min(0.95, 0.3 + 0.05 * epoch + (width % 97) / 1000)
            history.append(EpochMetrics(epoch=epoch, train_loss=1.0, train_error=0.5, val_accuracy=accuracy,
                                         test_error=None, lr=0.1, seconds=1.0, ema_val_accuracy=accuracy))
            if callback is not None and callback(epoch, history[-1]):
                break
        return type("Result", (), dict(
            val_accuracy=history[-1].val_accuracy, test_accuracy=history[-1].val_accuracy, epochs=len(history),
            stopped_early=len(history) < recipe.epochs, train_seconds=float(len(history)), resumed_from_epoch=0,
            images_per_second=1.0, device="cpu", compile_seconds=0.0, val_correct="", precision=recipe.precision,
            memory_format="nchw", threads=1, history_rows=lambda self: [dataclasses.asdict(h) for h in history]))()

    monkeypatch.setattr(sweep_module, "train", fake_train)


def test_a_sweep_stops_trials_at_rungs_and_the_report_keeps_them_off_the_front(capsys, tmp_path, curves):
    text = (TINY_STUDY.replace("epochs = 1", "epochs = 4").replace("n_trials = 2", "n_trials = 6\n"
            'early_stopping = "mo-asha"\nmin_epochs = 1\nreduction_factor = 2')
            .replace("width_multiplier = [1, 64]", "width_multiplier = [1, 2]").replace('baselines = ["resnet20"]', ""))
    path, storage = write(tmp_path, text), f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = run(capsys, "sweep", str(path), "--storage", storage, "--device", "cpu", "--format", "json")
    assert code == 0, err
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    records = [t.user_attrs for t in trials if t.user_attrs.get("status") in ("trained", "stopped")]
    assert len(records) == 6
    stopped = [r for r in records if r["status"] == "stopped"]
    full = [r for r in records if r["status"] == "trained"]
    assert stopped and full and all(r["epochs"] in (1, 2) for r in stopped) and all(r["epochs"] == 4 for r in full)
    for r in records:  # each stored its objectives at every rung it reached: accuracy and parameters
        assert sorted(r["rungs"], key=int) == [str(e) for e in (1, 2) if e <= r["epochs"]]
        assert r["rungs"][str(min(r["epochs"], 2))][1] == r["params"]
    # The first trial at a rung is alone there: too few to judge, it goes on.
    assert trials[0].user_attrs["status"] in ("trained", "infeasible")
    front = json.loads(out)
    assert front and {row["status"] for row in front} == {"trained"}
    code, out, err = run(capsys, "report", str(path), "--storage", storage, "--out", str(tmp_path / "r"),
                         "--format", "json")
    rows = json.loads(out)
    assert code == 0 and {r["status"] for r in rows if r["rank"] is not None} == {"trained"}
    assert all(r["rank"] is None and not r["on_front"] for r in rows if r["status"] == "stopped")
    code, out, _ = run(capsys, "report", str(path), "--storage", storage, "--out", str(tmp_path / "r"))
    assert f"{len(stopped)} stopped" in out


def test_early_stopping_off_trains_every_trial_to_the_end(capsys, tmp_path, curves):
    text = TINY_STUDY.replace("epochs = 1", "epochs = 4").replace('baselines = ["resnet20"]', "")
    path, storage = write(tmp_path, text), f"sqlite:///{tmp_path / 's.db'}"
    code, _, err = run(capsys, "sweep", str(path), "--storage", storage, "--device", "cpu")
    assert code == 0, err
    records = [t.user_attrs for t in optuna.load_study(study_name="tiny", storage=storage).trials]
    trained = [r for r in records if r.get("status") == "trained"]
    assert len(trained) == 2 and all(r["epochs"] == 4 and "rungs" not in r for r in trained)


# -- no network trained twice -----------------------------------------------------------------------------------

def test_a_proposal_already_trained_is_not_trained_again(capsys, tmp_path, curves, monkeypatch):
    """A space of one network: the first proposal trains; every later one is a duplicate of it, takes its values,
    does not count against --n-trials, and is never on the front. Early stopping's stopped trials are twins too."""
    monkeypatch.setattr(sweep_module, "MAX_REJECTED_PER_TRIAL", 2)
    text = (TINY_STUDY.replace("stem_width = [4, 8]", "stem_width = 4").replace("width_multiplier = [1, 64]", "")
            .replace('shortcut = ["A", "B"]', 'shortcut = "B"').replace('baselines = ["resnet20"]', ""))
    path, storage = write(tmp_path, text), f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = run(capsys, "sweep", str(path), "--storage", storage, "--device", "cpu")
    assert code == 0, err
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.user_attrs["status"] for t in trials] == ["trained", *["duplicate"] * 4]  # 2 x budget 2, then stop
    first = trials[0]
    for twin in trials[1:]:
        attrs = twin.user_attrs
        assert attrs["duplicate_of"] == 0 and "as trial 0" in attrs["reason"] and twin.values == first.values
        assert attrs["val_accuracy"] == first.user_attrs["val_accuracy"] and attrs["spec"] == first.user_attrs["spec"]
    said = "".join(out.split())
    assert "1trained(0stoppedearly,0failed)0infeasible,4duplicates" in said and "nonewcandidates" in said
    code, out, _ = run(capsys, "report", str(path), "--storage", storage, "--out", str(tmp_path / "r"),
                       "--format", "json")
    rows = json.loads(out)
    assert [r["number"] for r in rows if r["on_front"]] == [0]


def test_two_workers_on_one_storage_decide_on_each_others_rungs(tmp_path, curves, monkeypatch):
    """Two sweeps on one study at once: every rung decision reads, from the storage, the values of every trial
    (of either worker) that decided at that rung before it, and decides by the same rule."""
    import threading
    import time

    from resnet_bench.search.storage import locate_study

    text = (TINY_STUDY.replace("epochs = 1", "epochs = 4").replace("n_trials = 2", "n_trials = 4\n"
            'early_stopping = "mo-asha"\nmin_epochs = 1\nreduction_factor = 2')
            .replace("width_multiplier = [1, 64]", "width_multiplier = [1, 2, 3, 4]")
            .replace("stem_width = [4, 8]", "stem_width = [4, 8, 12, 16]").replace('baselines = ["resnet20"]', ""))
    config = load_study_file(write(tmp_path, text))
    location = locate_study("tiny", storage=f"sqlite:///{tmp_path / 's.db'}", out=tmp_path)
    fake_train = sweep_module.train
    monkeypatch.setattr(sweep_module, "train", lambda *a, **k: (time.sleep(0.05), fake_train(*a, **k))[1])
    seen, log, lock = threading.local(), [], threading.Lock()

    def spy_goes_on(mine, points, directions, eta, rule="eta"):
        seen.mine, seen.points = mine, [tuple(p) for p in points]
        return goes_on(mine, points, directions, eta, rule)

    real_decide = SweepRungs.goes_on

    def spy_decide(self, study, trial, record, epoch, history, train_seconds):
        result = real_decide(self, study, trial, record, epoch, history, train_seconds)
        with lock:
            log.append({"worker": threading.get_ident(), "epoch": epoch, "point": seen.points[seen.mine],
                        "points": seen.points, "goes_on": result})
        return result

    monkeypatch.setattr(early_stopping, "goes_on", spy_goes_on)
    monkeypatch.setattr(SweepRungs, "goes_on", spy_decide)
    sweeps = [sweep_module.Sweep(config, location, device="cpu", worker=w) for w in (0, 1)]
    errors = []

    def work(sweep):
        try:
            sweep.run(n_trials=4)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in sweeps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(log) >= 8
    for k, decision in enumerate(log):
        before = [d["point"] for d in log[:k] if d["epoch"] == decision["epoch"]]
        assert set(before) <= set(decision["points"]), "a decision missed a value stored at its rung before it"
    # The workers really shared their rungs: some decision counted a value the other worker stored.
    owner = {d["point"]: d["worker"] for d in log}
    assert any(owner[p] != d["worker"] for d in log for p in d["points"])
    assert any(not d["goes_on"] for d in log)  # and the rule stopped someone
    records = [t.user_attrs for t in optuna.load_study(study_name="tiny", storage=location.storage).trials]
    assert sum(r.get("status") in ("trained", "stopped") for r in records) == 8


def test_a_resumed_trial_judges_its_rung_on_the_epochs_before_its_resume_too(tmp_path):
    """A killed worker's trial resumes from its saved state: loss_sum at the rung sums every epoch it trained, not
    only those since the resume (which would rank it above trials that were never interrupted)."""
    config = load_study_file("quickstart_mo_asha")
    assert config.rung_estimate == "loss_sum"
    recipe = dataclasses.replace(config.base_recipe(), epochs=6)  # rungs after epochs 1 and 3

    def epoch(n: int, loss: float) -> EpochMetrics:
        return EpochMetrics(epoch=n, train_loss=loss, train_error=0.5, val_accuracy=0.5, test_error=None, lr=0.1,
                            seconds=2.0, val_loss=loss)

    judged = []
    sweep = object.__new__(sweep_module.Sweep)
    sweep.config, sweep.on_epoch, sweep.shared, sweep.study = config, None, None, None
    sweep.rungs = SweepRungs(config)
    sweep.rungs.goes_on = lambda study, trial, record, n, history, seconds: judged.append(
        (n, list(history), seconds)) or True
    record = sweep_module.TrialRecord(state_file=str(tmp_path / "trial.state"))
    after_epoch, on_resume = sweep._epoch_callbacks(type("Trial", (), {"number": 0})(), recipe, record)
    on_resume((epoch(1, 1.0), epoch(2, 0.5)), 4.0)  # as the trainer tells it, from the state saved after epoch 2
    assert after_epoch(3, epoch(3, 0.25)) is False  # the rung after epoch 3: judged, goes on
    (n, history, seconds), = judged
    assert history == [dataclasses.asdict(epoch(n, loss)) for n, loss in ((1, 1.0), (2, 0.5), (3, 0.25))]
    assert seconds == 6.0
