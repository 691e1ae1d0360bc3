"""MOASHA as a public piece: settings checked, decisions on a toy objective checked by hand, two workers on one
SQLite storage, and the study file's rung_estimate and promotion refused with one line."""

from __future__ import annotations

import multiprocessing

import optuna
import pytest

from resnet_bench.search.early_stopping import MOASHA, bracket_weights, promoted

from .helpers import TINY_STUDY, run, write

MAX_MIN = ["maximize", "minimize"]


@pytest.mark.parametrize("kwargs, named", [
    ({"min_epochs": 0}, "min_epochs"), ({"reduction_factor": 1}, "reduction_factor"),
    ({"directions": ["up"]}, "directions"), ({"directions": []}, "directions"), ({"rule": "half"}, "rule"),
    ({"max_epochs": 0}, "max_epochs"), ({"brackets": 0}, "brackets"), ({"brackets": True}, "brackets"),
    ({"brackets": 4, "max_epochs": 9}, "brackets"),  # rungs 1 and 3 before epoch 9: three brackets at most
])
def test_bad_settings_name_the_argument(kwargs, named):
    settings = {"min_epochs": 1, "reduction_factor": 3, "directions": MAX_MIN, **kwargs}
    with pytest.raises(ValueError, match=named):
        MOASHA(**settings)


def test_values_that_do_not_match_the_directions():
    stopper = MOASHA(min_epochs=1, reduction_factor=3, directions=MAX_MIN)
    study = optuna.create_study(directions=MAX_MIN)
    with pytest.raises(ValueError, match="directions"):
        stopper.should_stop(study, study.ask(), 1, [0.5])


def test_rungs_and_rules_by_hand():
    stopper = MOASHA(min_epochs=1, reduction_factor=3, directions=MAX_MIN, max_epochs=9)
    assert [e for e in range(1, 10) if stopper.is_rung(e)] == [1, 3]  # 9 is the last epoch: no rung
    # Six at a rung: front a (0.9, 2), b (0.8, 1), d (0.85, 1.5), e (0.95, 3); eta 3 keeps the top 2 of the order.
    points = [[0.9, 2.0], [0.8, 1.0], [0.7, 3.0], [0.85, 1.5], [0.95, 3.0], [0.6, 3.5]]
    eta = promoted(points, MAX_MIN, 3, "eta")
    assert len(eta) == 2 and len(promoted(points, MAX_MIN, 3, "eta+1")) == 3
    front = promoted(points, MAX_MIN, 3, "front")
    assert front[:2] == eta and sorted(front) == [0, 1, 3, 4]  # every front point, up to 2 more


def test_bracket_weights_are_hyperbands_counts():
    """Three brackets, eta 3 (Hyperband with s_max 2): 9, 3 * 3/2 and 1 * 3 configurations, normalised."""
    assert bracket_weights(3, 3) == pytest.approx([9 / 16.5, 4.5 / 16.5, 3 / 16.5])
    assert bracket_weights(2, 3) == pytest.approx([0.6, 0.4]) and bracket_weights(1, 3) == [1.0]


def test_a_trial_of_the_second_bracket_is_judged_from_the_second_rung_against_its_own_bracket():
    """Brackets kept in the trials' attributes: three of bracket 0 fill rung 1 (the third stops there); a trial of
    bracket 1 is not judged at epoch 1 (nothing stored) and at epoch 3 meets only its own bracket (alone: goes on),
    although three trials of bracket 0 stored better values at rung 3."""
    stopper = MOASHA(min_epochs=1, reduction_factor=3, directions=MAX_MIN, max_epochs=9, brackets=2, rule="eta")
    study = optuna.create_study(directions=MAX_MIN)
    decided = []
    for values in ([0.9, 1.0], [0.8, 1.0], [0.7, 1.0]):
        trial = study.ask()
        trial.set_user_attr("bracket", 0)
        decided.append(stopper.should_stop(study, trial, 1, values))
        if not decided[-1]:
            decided.append(stopper.should_stop(study, trial, 3, [v + 0.05 for v in values]))
    assert decided == [False, False, False, False, True]  # n // eta = 1 of three at rung 1: the third stops
    late = study.ask()
    late.set_user_attr("bracket", 1)
    assert stopper.is_rung(1) and not stopper.is_rung(1, late) and stopper.is_rung(3, late)
    assert stopper.should_stop(study, late, 1, [0.1, 1.0]) is False and "rungs" not in late.user_attrs
    assert stopper.should_stop(study, late, 3, [0.2, 1.0]) is False and late.user_attrs["rungs"] == {"3": [0.2, 1.0]}


def test_a_trial_draws_its_bracket_once_and_keeps_it():
    stopper = MOASHA(min_epochs=1, reduction_factor=3, directions=MAX_MIN, max_epochs=9, brackets=3, seed=7)
    study = optuna.create_study(directions=MAX_MIN)
    trials = [study.ask() for _ in range(200)]
    drawn = [stopper.bracket(t) for t in trials]
    assert [t.user_attrs["bracket"] for t in trials] == drawn == [stopper.bracket(t) for t in trials]
    shares = [drawn.count(b) / 200 for b in range(3)]
    assert shares == pytest.approx(bracket_weights(3, 3), abs=0.1) and min(shares) > 0


def toy(trial, stopper):
    x = trial.suggest_float("x", 0, 1)
    for epoch in range(1, 10):
        accuracy, cost = x * (1 - 0.5 ** epoch), x ** 2
        if stopper.should_stop(trial.study, trial, epoch, [accuracy, cost]):
            trial.set_user_attr("stopped_at", epoch)
            return accuracy, cost
    return accuracy, cost


def test_the_readme_example_decides_as_checked_by_hand():
    """One worker, x given in order: trials 0 and 1 are alone or two at rung 1 (fewer than eta): they go on. At
    trial 2 (x = 0.5) the rung holds (0.45, 0.81), (0.05, 0.01), (0.25, 0.25): all on the front; n // eta = 1
    goes on, the most accurate first (trial 0), so trial 2 stops."""
    stopper = MOASHA(min_epochs=1, reduction_factor=3, directions=MAX_MIN, max_epochs=9)
    study = optuna.create_study(directions=MAX_MIN)
    for x in (0.9, 0.1, 0.5):
        study.enqueue_trial({"x": x})
    study.optimize(lambda t: toy(t, stopper), n_trials=3)
    assert [t.user_attrs.get("stopped_at") for t in study.trials] == [None, None, 1]
    assert study.trials[2].user_attrs["rungs"] == {"1": [0.25, 0.25]}


def _worker(url: str) -> None:
    stopper = MOASHA(min_epochs=1, reduction_factor=3, directions=MAX_MIN, max_epochs=9)
    study = optuna.load_study(study_name="toy", storage=url)
    study.optimize(lambda t: toy(t, stopper), n_trials=6)


def test_two_workers_on_one_sqlite_storage(tmp_path):
    """Two processes run the README's example on one study: every trial judged at a rung saw the rung's values of
    both workers' trials, and the decisions replayed from the stored rungs, in trial-number order, agree."""
    url = f"sqlite:///{tmp_path / 'toy.db'}"
    optuna.create_study(study_name="toy", storage=url, directions=MAX_MIN,
                        sampler=optuna.samplers.RandomSampler(seed=0))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(url,)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert all(w.exitcode == 0 for w in workers)
    trials = optuna.load_study(study_name="toy", storage=url).trials
    assert len(trials) == 12 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    stopped = [t for t in trials if "stopped_at" in t.user_attrs]
    assert stopped and len(stopped) < 12
    for t in stopped:  # a stopped trial was outside the top n // eta of what was stored before it decided
        epoch = str(t.user_attrs["stopped_at"])
        assert t.user_attrs["rungs"][epoch] == list(t.values)


@pytest.mark.parametrize("line, named", [('rung_estimate = "median"', "rung_estimate='median'"),
                                         ('promotion = "half"', "promotion='half'"),
                                         ("brackets = 0", "brackets=0"), ("brackets = 9", "brackets=9")])
def test_bad_budget_keys_exit_2_with_one_line(tmp_path, capsys, line, named):
    path = write(tmp_path, TINY_STUDY.replace("n_trials = 2", f"n_trials = 2\n{line}"))
    code, _, err = run(capsys, "sweep", str(path), "--out", str(tmp_path), "--device", "cpu")
    assert code == 2 and named in err
    assert "val_accuracy, ema, probe, loss_sum" in err or "eta, eta+1, front" in err or "an integer from 1 to" in err
    assert len(err.strip().splitlines()) <= 2
