"""The sweep: study files, a real small study on the mini data set, resume, infeasible and failed trials."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from importlib import resources
from pathlib import Path

import optuna
import pytest

import resnet_bench as rb
from resnet_bench.correctness import unpack_correct
from resnet_bench.search import sweep as sweep_module
from resnet_bench.search.config import (
    CONSTRAINTS,
    RECIPE_KEYS,
    SHIPPED_STUDIES,
    SPACE_KEYS,
    StudyFileError,
    load_study_file,
    parse_study,
)
from resnet_bench.search.records import FIELDS, TrialRecord
from resnet_bench.search.space import architecture_count, grid, recipe_count, space_size
from resnet_bench.search.storage import locate_study
from resnet_bench.search.study import StudyMismatchError, open_study
from resnet_bench.search.sweep import Sweep, record_of
from resnet_bench.search.workers import TrialTickets, plan_workers
from resnet_bench.spec import ResNetSpec
from resnet_bench.train import TrainingDiverged

from .helpers import REPO, TINY_STUDY, minimal_study, run, toml_text, write

# -- study files -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED_STUDIES)
def test_shipped_studies_parse_and_the_repository_copies_are_the_packaged_ones(name):
    config = load_study_file(name)
    assert config.name == name and config.objectives[0].metric == "val_accuracy"
    packaged = resources.files("resnet_bench").joinpath(f"studies/{name}.toml").read_text()
    assert (REPO / "studies" / f"{name}.toml").read_text() == packaged
    assert load_study_file(REPO / "studies" / f"{name}.toml") == config


def test_every_key_is_documented_by_an_example_in_the_quickstart():
    import re

    text = load_study_file("quickstart").source
    for key in (*SPACE_KEYS, *RECIPE_KEYS, *CONSTRAINTS, "n_trials", "timeout_minutes", "n_startup_trials",
                "population_size", "baselines", "val_size", "image_size", "seed", "dataset", "description"):
        # An example line, set or commented out ("key = ..." or "# key = ..."), not the word inside a comment.
        assert re.search(rf"^(# )?{key} = \S", text, re.M), key


@pytest.mark.parametrize("command", [["sweep", "--n-trials", "1", "--device", "cpu"], ["report"],
                                     ["confirm", "--device", "cpu"]])
def test_a_study_name_never_leaves_out(capsys, tmp_path, command):
    out = tmp_path / "out"
    code, _, err = run(capsys, *command, "--study-name", "../../escaped", "--out", str(out))
    assert code == 2 and err.strip().endswith(
        "study name '../../escaped' is not accepted; use letters, digits, '_', '-' and '.', starting with a letter "
        "or digit (one folder name)") and len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "escaped").exists()


def test_a_failed_or_interrupted_baseline_is_queued_again_once_per_command_from_its_state(tmp_path):
    config = load_study_file(str(write(tmp_path, TINY_STUDY)))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(config, storage, "tiny")
    baseline = study.ask()  # the queued resnet20, as a worker takes it
    assert baseline.user_attrs["baseline"] == "resnet20"
    state = tmp_path / "trial-0.state"
    state.write_bytes(b"its last epoch")
    baseline.set_user_attr("state_file", str(state))
    study.tell(baseline, state=optuna.trial.TrialState.FAIL)  # Ctrl-C during its training

    def waiting(study):
        return [t for t in study.get_trials() if t.state == optuna.trial.TrialState.WAITING]

    again = open_study(config, storage, "tiny")  # the next command
    queued = waiting(again)
    assert len(queued) == 1 and queued[0].user_attrs["baseline"] == "resnet20"
    assert queued[0].user_attrs["state_file"] == str(state)  # it resumes from its last epoch
    assert len(waiting(open_study(config, storage, "tiny"))) == 1  # queued once, not once per open
    # Trained (or still waiting, or running): never queued again.
    taken = again.ask()
    again.tell(taken, [0.5, 1000.0])
    assert waiting(open_study(config, storage, "tiny")) == []


def test_the_cpu_fashion_mnist_study_fits_its_promise():
    # The full data set with a validation split of at least 5,000, 10 epochs or more, early stopping, at most two
    # hours (the last trials end within 20 minutes of the timeout), resnet20 as its baseline and inside the space's
    # bound: every network it may train costs no more GFLOPs than resnet20 on 1x28x28 images.
    from resnet_bench.profiling import count_cost
    config = load_study_file("fashion_mnist_cpu")
    assert config.dataset == "fashion-mnist" and config.val_size >= 5000 and config.baselines == ("resnet20",)
    assert config.recipe["epochs"].value >= 10 and config.early_stopping == "mo-asha"
    assert config.timeout_minutes + 20 <= 120
    resnet20 = count_cost("resnet20,in_channels=1", 28).gflops
    assert resnet20 == pytest.approx(0.030821248) and resnet20 <= config.constraints["max_gflops"] < 0.031
    assert config.reference_point["gflops"] == config.constraints["max_gflops"]
    largest = [r for r in grid(config) if r.get("block") == "basic" and r.get("stem_width") == 16
               and r.get("stages") == 3 and all(r.get(f"blocks_{i}") == 3 for i in (1, 2, 3))
               and r.get("shortcut") == "A"]
    assert len(largest) == 1  # resnet20 itself is one of its networks


def test_cifar10_study_says_it_is_untested():
    assert "UNTESTED ON THE REAL DATA" in load_study_file("cifar10").source


def test_no_file_runs_the_quickstart():
    assert load_study_file(None).name == "quickstart"


def test_space_size_by_hand():
    config = parse_study({**minimal_study(), "space": {"stages": [2, 3], "blocks": {"low": 1, "high": 2},
                                                  "block": ["basic", "bottleneck"], "groups": [1, 2],
                                                  "shortcut": ["A", "none"], "stem_width": [8, 16]}})
    # depths: 2**2 + 2**3 = 12; block x shortcut: basic (A: zero_init fixed, none) = 2, bottleneck with
    # 2 groups = 4; stem widths 2.
    assert space_size(config) == 12 * (2 + 4) * 2
    assert architecture_count(config) == 12 * (2 + 4) * 2 and recipe_count(config) == 1
    lr = parse_study({**minimal_study(), "recipe": {"lr": {"low": 0.01, "high": 0.1}}})
    assert math.isinf(space_size(lr)) and math.isinf(recipe_count(lr)) and architecture_count(lr) == 1


def test_space_size_counts_the_modern_keys_only_where_the_shortcut_takes_them():
    config = parse_study({**minimal_study(), "space": {"stages": 2, "blocks": 1, "shortcut": ["A", "B", "none"],
                                                  "downsample": ["conv", "avgpool"], "pad": ["after", "both"],
                                                  "se_ratio": [0, 0.0625, 0.25], "drop_path": [0, 0.1]}})
    # A: pad x drop_path x zero_init (fixed) = 4; B: downsample x drop_path = 4; none: 1; times 3 SE ratios.
    assert architecture_count(config) == (4 + 4 + 1) * 3


def test_sampled_specs_take_the_modern_keys_where_they_apply():
    from resnet_bench.search.space import sample_spec

    config = parse_study({**minimal_study(), "space": {
        "stages": 2, "blocks": {"low": 1, "high": 2}, "stem": ["cifar", "deep"], "shortcut": ["A", "B", "none"],
        "downsample": ["conv", "avgpool"], "pad": ["after", "both"], "se_ratio": [0, 0.0625],
        "drop_path": {"low": 0.0, "high": 0.2, "step": 0.1}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    specs = [sample_spec(study.ask(), config) for _ in range(60)]
    assert {s.downsample for s in specs if s.shortcut == "B"} == {"conv", "avgpool"}
    assert {s.pad for s in specs if s.shortcut == "A"} == {"after", "both"}
    assert {s.se_ratio for s in specs} == {0.0, 0.0625} and {s.stem for s in specs} == {"cifar", "deep"}
    assert {round(s.drop_path, 6) for s in specs if s.shortcut != "none"} == {0.0, 0.1, 0.2}
    assert all(s.drop_path == 0 for s in specs if s.shortcut == "none")


def test_the_shipped_modern_study_is_the_quickstart_with_the_modern_keys_searched():
    quick, modern = load_study_file("quickstart"), load_study_file("quickstart_modern")
    # Shortcut A takes pad and drop_path, B downsample and drop_path: 2 x 2 each, times 2 SE ratios.
    assert architecture_count(modern) == 8 * architecture_count(quick)
    changed = {k for k in SPACE_KEYS if modern.space[k] != quick.space[k]}
    assert changed == {"downsample", "pad", "se_ratio", "drop_path"}
    assert (modern.recipe, modern.constraints, modern.dataset) == (quick.recipe, quick.constraints, quick.dataset)
    assert modern.baselines == ("resnet20", "resnet20_se", "resnet20_d")


def test_a_study_stored_before_the_modern_keys_keeps_its_fingerprint():
    config = load_study_file("quickstart")
    # Fixed at their defaults (the networks of before), the new keys are not part of what the study was measured under.
    assert not {"downsample", "pad", "se_ratio", "drop_path"} & set(config.fingerprint_parts()["space"])
    searched = parse_study({**minimal_study(), "space": {"se_ratio": [0, 0.0625]}})
    assert searched.fingerprint_parts()["space"]["se_ratio"] == [0, 0.0625]
    assert parse_study({**minimal_study(), "space": {"se_ratio": 0}}).fingerprint() == parse_study(
        minimal_study()).fingerprint()


def test_baseline_params_hold_the_modern_fields():
    from resnet_bench.search.space import baseline_params

    config = parse_study({**minimal_study(), "space": {"shortcut": ["A", "B"], "se_ratio": [0.0, 0.0625],
                                                  "downsample": ["conv", "avgpool"], "pad": ["after", "both"]}})
    assert (baseline_params(rb.presets.get("resnet20_se"), config).items()
            >= {"se_ratio": 0.0625, "pad": "after"}.items())
    held = baseline_params(rb.presets.get("resnet20_d"), config)
    assert held["downsample"] == "avgpool" and held["se_ratio"] == 0.0 and "pad" not in held


def test_the_dry_run_counts_architectures_apart_from_a_continuous_recipe(capsys, tmp_path):
    text = TINY_STUDY.replace("batch_size = 256", "batch_size = 256\nlr = { low = 0.01, high = 0.05 }")
    code, out, err = run(capsys, "sweep", str(write(tmp_path, text)), "--dry-run", "--dry-run-samples", "4")
    assert code == 0, err
    assert "space of tiny: architectures: 8; recipes: continuous (a float range)" in out


BAD = [
    ({"space": {"grups": [1, 2]}}, ["space.grups is not a study key", "groups"]),
    ({"space": {"groups": []}}, ["space.groups=[] is an empty choice"]),
    ({"space": {"blocks": {"low": 4, "high": 2}}}, ["space.blocks is an empty range", "low=4 > high=2"]),
    ({"space": {"blocks": {"low": 1, "high": 2.5}}}, ["space.blocks", "integers"]),
    ({"space": {"block": ["basic", "dense"]}}, ["space.block", "'dense'", "preact_bottleneck"]),
    ({"space": {"stem": {"low": 1, "high": 2}}}, ["space.stem takes a value or a list"]),
    ({"space": {"dropout": 1.5}}, ["space.dropout=1.5", "[0, 1)"]),
    ({"space": {"se_ratio": [0, 1]}}, ["space.se_ratio", "1 is not accepted", "[0, 1)"]),
    ({"space": {"drop_path": {"low": -0.1, "high": 0.2}}}, ["space.drop_path.low=-0.1", "[0, 1)"]),
    ({"space": {"downsample": "pool"}}, ["space.downsample='pool'", "conv, avgpool"]),
    ({"space": {"pad": ["after", "left"]}}, ["space.pad", "'left'", "after, both"]),
    ({"seed": "zero"}, ["seed='zero'", "integer"]),
    ({"objectives": [{"metric": "accuracy"}]}, ["objectives[0].metric='accuracy' is not an objective", "val_accuracy"]),
    ({"objectives": [{"metric": "test_accuracy"}]}, ["test_accuracy", "never used for selection"]),
    ({"objectives": []}, ["objectives must be a non-empty list"]),
    ({"objectives": [{"metric": "gflops", "direction": "up"}]}, ["objectives[0].direction='up'"]),
    ({"constraints": {"max_flops": 1}}, ["constraints.max_flops is not a study key", "max_gflops"]),
    ({"constraints": {"max_gflops": -1}}, ["constraints.max_gflops=-1", "> 0"]),
    ({"recipe": {"name": "slow"}}, ["recipe.name='slow'", "he2015"]),
    ({"name": ".."}, ["name='..'", "one folder name"]),
    ({"name": "a/b"}, ["name='a/b'", "one folder name"]),
    ({"recipe": {"epochs": 0}}, ["recipe.epochs=0", "integers >= 1"]),
    ({"recipe": {"epochs": 1, "warmup_epochs": 2}}, ["warmup_epochs=2 does not fit in epochs=1"]),
    ({"budget": {"n_trials": 0}}, ["budget.n_trials=0"]),
    ({"sampler": {"name": "cmaes"}}, ["sampler.name='cmaes'", "tpe, nsga2, random"]),
    ({"baselines": ["resnet51"]}, ["baselines[0]", "resnet50"]),
    ({"baselines": ["resnet20,stem_widht=8"]}, ["baselines[0]", "unknown spec field 'stem_widht'"]),
    ({"baselines": ["spec.json"]}, ["baselines[0]", "unknown model 'spec.json'"]),
    ({"dataset": "mnist"}, ["dataset='mnist'", "fashion-mnist-mini"]),
    ({"colour": "red"}, ["colour is not a study key"]),
]


@pytest.mark.parametrize("change, words", BAD, ids=[str(c) for c, _ in BAD])
def test_bad_study_file_is_exit_2_naming_the_key(capsys, tmp_path, change, words):
    import tomllib

    base = tomllib.loads(TINY_STUDY)
    for key, value in change.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) and key in ("space", "constraints",
                                                                                          "recipe", "budget",
                                                                                          "sampler") else value
    with pytest.raises(StudyFileError):
        parse_study(base)
    path = write(tmp_path, toml_text(base))
    code, out, err = run(capsys, "sweep", str(path), "--dry-run")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_missing_and_broken_files(capsys, tmp_path):
    code, _, err = run(capsys, "sweep", str(tmp_path / "none.toml"))
    assert code == 2 and "does not exist" in err and "quickstart" in err
    code, _, err = run(capsys, "sweep", str(write(tmp_path, "name = [")), "--dry-run")
    assert code == 2 and "not valid TOML" in err


def test_dry_run(capsys, tmp_path, monkeypatch):
    def no_trace(*args, **kwargs):
        raise AssertionError("the dry run traced a network: it counts on the meta device, without weights")

    monkeypatch.setattr("resnet_bench.search.sweep.count_cost", no_trace)
    code, out, err = run(capsys, "sweep", str(write(tmp_path, TINY_STUDY)), "--dry-run", "--dry-run-samples", "20",
                         "--format", "json")
    assert code == 0, err
    row = json.loads(out)[0]
    assert row["space_size"] == 2 * 2 * 2 and row["samples"] == 20 and row["invalid"] == 0
    assert 0 < row["feasible"] < 20  # width_multiplier 64 is far over 300,000 parameters
    assert row["feasible_params_range"][1] <= 300_000 < row["params_range"][1]


# -- a real sweep ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_real_small_sweep_records_resumes_and_refuses_a_changed_file(capsys, tmp_path):
    path = write(tmp_path, TINY_STUDY)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    code, out, err = run(capsys, "sweep", str(path), "--storage", storage, "--device", "cpu", "--format", "json")
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage=storage)
    records = [(t, record_of(t)) for t in study.trials]
    trained = [r for t, r in records if r.status == "trained"]
    infeasible = [(t, r) for t, r in records if r.status == "infeasible"]
    assert len(trained) == 2  # budget.n_trials; infeasible candidates do not count
    baseline = [r for r in trained if r.baseline]
    assert [r.baseline for r in baseline] == ["resnet20"] and baseline[0].params == 269_434  # 1 channel in
    # The baseline has its parameters where the space holds them (optuna-dashboard's slice and parallel views):
    # 3 stages and 16 channels are outside TINY_STUDY's space; block, shortcut and multiplier are in it.
    base_trial = next(t for t, r in records if r.baseline)
    assert base_trial.params == {"shortcut": "A", "width_multiplier": 1}
    assert set(base_trial.distributions) == {"shortcut", "width_multiplier"}
    assert study.metric_names == ["val_accuracy", "params"]
    for r in trained:
        assert r.dataset == "fashion-mnist-mini" and r.seed == 0 and r.val_size == 500 and r.input_size == 28
        assert 0 < r.val_accuracy <= 1 and 0 < r.test_accuracy <= 1 and r.epochs == 1 and r.val_images == 500
        assert unpack_correct(r.val_correct, 500).sum() == round(r.val_accuracy * 500)  # for the paired test
        assert r.recipe["epochs"] == 1 and r.recipe["batch_size"] == 256 and r.torch_version and r.threads >= 1
        assert r.train_seconds > 0 and r.images_per_second > 0 and r.device == "cpu" and r.gflops > 0
        assert r.resnet_bench_version == rb.__version__ and r.overhead_seconds < r.trial_seconds
        # everything needed to rebuild it: the spec's one-line form builds the same network
        assert sum(p.numel() for p in rb.build_model(ResNetSpec.parse(r.spec)).parameters()) == r.params
    for trial, r in infeasible:  # never trained: cost and reason, no metrics
        assert r.val_accuracy is None and r.train_seconds is None and "max_params" in r.reason
        assert re.search(r"outside the constraints: params \d{3},\d{3} > max_params 300,000", r.reason), r.reason
        assert r.params > 300_000 and trial.constraints["max_params"] > 0 and trial.constraints["valid"] == 0
    assert json.loads(out) and all(row["val_accuracy"] for row in json.loads(out))  # the front
    # Re-trained from its record alone, through the command line, a trial gives the same numbers.
    sampled = next(r for r in trained if not r.baseline)
    code, out, err = run(capsys, "train", sampled.spec, "--dataset", sampled.dataset, "--seed", str(sampled.seed),
                         "--val-size", str(sampled.val_size), "--recipe", json.dumps(sampled.recipe),
                         "--device", "cpu", "--format", "json")
    again = json.loads(out)[0]
    assert code == 0 and again["spec"] == sampled.spec
    assert (again["val_accuracy"], again["test_accuracy"]) == (sampled.val_accuracy, sampled.test_accuracy)
    assert {f for t in study.trials for f in t.user_attrs} <= set(FIELDS)
    assert all(t.constraints["max_params"] <= 0 for t in study.trials if record_of(t).status == "trained")

    code, _, err = run(capsys, "sweep", str(path), "--storage", storage, "--device", "cpu", "--n-trials", "1")
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert sum(record_of(t).status == "trained" for t in study.trials) == 3  # resumed, one more
    assert sum(record_of(t).baseline == "resnet20" for t in study.trials) == 1  # not enqueued again
    numbers = [t.number for t in study.trials]
    assert numbers == sorted(set(numbers))

    changed = write(tmp_path, TINY_STUDY.replace("stem_width = [4, 8]", "stem_width = [4, 16]"), "changed.toml")
    code, out, err = run(capsys, "sweep", str(changed), "--storage", storage)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "space.stem_width: [4, 8] -> [4, 16]" in err and "--study-name" in err


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    calls = []

    def diverges(*args, **kwargs):
        calls.append(1)
        raise TrainingDiverged("the training loss became nan in epoch 1 (lr 0.2)")

    monkeypatch.setattr(sweep_module, "train", diverges)
    config = load_study_file(write(tmp_path, TINY_STUDY.replace('baselines = ["resnet20"]', "")))
    sweep = Sweep(config, locate_study("tiny", out=tmp_path), device="cpu")
    summary = sweep.run()
    failed = [t for t in sweep.study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert summary.failed == 2 and summary.trained == 2 and len(calls) == 2 and len(failed) == 2
    assert all("TrainingDiverged: the training loss became nan in epoch 1" in t.user_attrs["reason"] for t in failed)
    assert all(t.user_attrs["status"] == "failed" and t.user_attrs["spec"] for t in failed)
    assert not any(record_of(t).status == "trained" for t in sweep.study.trials)


def test_tickets_are_taken_once_each_under_concurrent_takers(tmp_path):
    import threading

    tickets, taken, start = TrialTickets.create(tmp_path, 5), [], threading.Barrier(8)

    def taker():
        start.wait()
        while TrialTickets(tickets.path).take():  # each its own open file, as each worker process has
            taken.append(1)

    threads = [threading.Thread(target=taker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 5 and tickets.left() == 0 and not tickets.take()


def test_workers_share_the_budget_as_they_go(tmp_path, monkeypatch):
    """A worker trains while tickets are left, whatever its own cap: the first takes the whole budget of 3 here,
    the next finds none and trains nothing (with fixed shares, each would have trained its half)."""
    monkeypatch.setattr(sweep_module, "train", lambda *a, **k: (_ for _ in ()).throw(TrainingDiverged("nan")))
    config = load_study_file(write(tmp_path, TINY_STUDY.replace('baselines = ["resnet20"]', "")))
    location = locate_study("tiny", storage=f"sqlite:///{tmp_path / 't.db'}", out=tmp_path)
    tickets = TrialTickets.create(tmp_path, 3)
    first = Sweep(config, location, device="cpu", worker=1).run(n_trials=10, take_ticket=tickets.take)
    second = Sweep(config, location, device="cpu", worker=2).run(n_trials=10, take_ticket=tickets.take)
    assert (first.trained, second.trained, tickets.left()) == (3, 0, 0)
    statuses = [t.user_attrs["status"] for t in optuna.load_study(study_name="tiny", storage=location.storage).trials]
    assert statuses.count("failed") == 3 and set(statuses) <= {"failed", "infeasible"}


def test_an_infeasible_space_stops_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "MAX_REJECTED_PER_TRIAL", 3)
    text = TINY_STUDY.replace("max_params = 300000", "max_params = 10").replace('baselines = ["resnet20"]', "")
    config = load_study_file(write(tmp_path, text))
    summary = Sweep(config, locate_study("tiny", storage=f"sqlite:///{tmp_path / 'i.db'}", out=tmp_path),
                    device="cpu").run(n_trials=1)
    assert summary.stopped == "infeasible space" and summary.infeasible == 3 and summary.trained == 0


def test_mismatch_error_is_bad_input(tmp_path):
    config = load_study_file(write(tmp_path, TINY_STUDY))
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    open_study(config, storage)
    other = load_study_file(write(tmp_path, TINY_STUDY.replace('metric = "params"', 'metric = "gflops"'), "o.toml"))
    with pytest.raises(StudyMismatchError, match='objectives: .*"params".* -> .*"gflops"'):
        open_study(other, storage)
    assert sqlite3.connect(tmp_path / "m.db").execute("select count(*) from studies").fetchone() == (1,)


def test_record_round_trip():
    record = TrialRecord(status="trained", spec="block=basic,layers=1", params=3, val_accuracy=0.5)
    assert TrialRecord.from_attrs({**record.to_attrs(), "unknown": [0.0]}) == record


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--storage", "nosuchdb://nowhere"], ["--storage 'nosuchdb://nowhere' is not a storage URL"]),
        (["--timeout", "-1"], ["--timeout '-1'", "> 0"]),
        (["--n-trials", "0"], ["--n-trials=0"]),
        (["--device", "cuda:7"], ["cuda:7"]),
        (["--trials-per-gpu", "2", "--device", "cpu"], ["--trials-per-gpu needs a GPU", "--workers N"]),
        (["--trials-per-gpu", "2", "--workers", "2"], ["cannot both be given"]),
        (["--trials-per-gpu", "0"], ["--trials-per-gpu=0"]),
    ],
)
def test_bad_sweep_options(capsys, tmp_path, argv, words):
    code, out, err = run(capsys, "sweep", str(write(tmp_path, TINY_STUDY)), *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err


def test_worker_processes_are_spread_over_the_gpus():
    assert plan_workers(None, None, 0) == [None] and plan_workers(None, None, 2) == [0]
    assert plan_workers(3, None, 0) == [None, None, None] and plan_workers(3, None, 2) == [0, 1, 0]
    assert plan_workers(None, 4, 1) == [0, 0, 0, 0] and plan_workers(None, 2, 3) == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("device, visible, given", [
    ("cuda:1", ["1", "1"], "cuda"),  # one named GPU: both workers on it, where it is their cuda:0
    ("cuda", ["0", "1", "2", "3", "0", "1", "2", "3"], "cuda"),  # every GPU, two workers each
])
def test_workers_on_gpus_see_the_gpus_the_command_names(capsys, tmp_path, monkeypatch, device, visible, given):
    """Stands in for four GPUs and for the worker processes: what each worker is started with."""
    import torch

    from resnet_bench.search import workers as workers_module
    from resnet_bench.search.sweep import SweepSummary

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    started = []

    class Worker:
        returncode = 0

        def __init__(self, command, env, **kwargs):
            started.append((command, env.get("CUDA_VISIBLE_DEVICES")))
            self.summary = command[command.index("--summary") + 1]

        def wait(self):  # the worker's report to its parent, as data
            SweepSummary(study_name="tiny", storage="s", trained=0, infeasible=0, failed=0, seconds=0.0,
                         stopped="timeout").write(self.summary)

    monkeypatch.setattr(workers_module.subprocess, "Popen", Worker)
    code, out, err = run(capsys, "sweep", str(write(tmp_path, TINY_STUDY)), "--device", device, "--trials-per-gpu", "2",
                       "--n-trials", "8", "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert [env for _, env in started] == visible
    assert all(command[command.index("--device") + 1] == given for command, _ in started)
    # Why the command stopped is what its workers said (the wall clock here), not always "budget".
    assert f"stoppedbytimeout({len(visible)}workers)" in "".join(out.split())


def test_latency_is_never_measured_on_a_shared_device(capsys, tmp_path):
    text = TINY_STUDY.replace('metric = "params"', 'metric = "latency_ms"')
    code, out, err = run(capsys, "sweep", str(write(tmp_path, text)), "--workers", "2", "--device", "cpu",
                         "--storage", f"sqlite:///{tmp_path / 'l.db'}")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "latency_ms is measured alone" in err and "2 worker processes would share the CPU" in err
    assert not (tmp_path / "l.db").exists()  # refused before the study is made


def test_a_study_can_compile_its_candidates(tmp_path):
    from resnet_bench.search.space import sample_recipe

    config = load_study_file(write(tmp_path, TINY_STUDY.replace("batch_size = 256",
                                                                "batch_size = 256\ncompile = true")))
    trial = optuna.create_study().ask()
    assert sample_recipe(trial, config).compile is True
    with pytest.raises(StudyFileError, match="recipe.compile='yes'.*true or false"):
        load_study_file(write(tmp_path, TINY_STUDY.replace("batch_size = 256", 'batch_size = 256\ncompile = "yes"')))


def test_the_trials_table_has_a_column_per_modern_field(tmp_path):
    from resnet_bench.search.storage import FINGERPRINT_PARTS
    from resnet_bench.search.trials import load_trials

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="t", directions=["maximize", "minimize"])
    study.set_user_attr(FINGERPRINT_PARTS, {"objectives": [["val_accuracy", "maximize"], ["gflops", "minimize"]]})
    for spec in ("resnet20,pad=both,se_ratio=0.0625,drop_path=0.1", "resnet20_d"):
        trial = study.ask()
        trial.set_user_attr("spec", rb.presets.resolve(spec).format())
        study.tell(trial, [0.5, 0.1])
    frame = load_trials(url, "t").trials
    assert frame[["downsample", "pad", "se_ratio", "drop_path"]].values.tolist() == [
        ["conv", "both", 0.0625, 0.1], ["avgpool", "after", 0.0, 0.0]]
    assert str(frame["se_ratio"].dtype) == "Float64"


def test_a_full_disk_fails_the_trial_with_its_reason_stops_the_command_and_the_next_one_retries_it(
        capsys, tmp_path, monkeypatch):
    import errno

    from resnet_bench import train as train_module

    text = TINY_STUDY.replace('baselines = ["resnet20"]', "").replace("epochs = 1", "epochs = 2")
    path, storage = write(tmp_path, text), f"sqlite:///{tmp_path / 's.db'}"
    real_save = train_module._save_state
    saves = []

    def full_after_the_first_epoch(path, *args):
        saves.append(path)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(path, *args)

    monkeypatch.setattr(train_module, "_save_state", full_after_the_first_epoch)
    code, _, err = run(capsys, "sweep", str(path), "--storage", storage, "--out", str(tmp_path / "r"),
                       "--device", "cpu", "--threads", "1", "--workers", "1")
    states = tmp_path / "r" / "tiny" / "states"
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("resnet-bench sweep: failed:") and f"no space left on the device of {states}" in last
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert len(trials) == 1  # the command stopped: no second trial met the full disk
    failed = trials[0]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["reason"].startswith(f"no space left on the device of {states}")
    assert Path(failed.user_attrs["state_file"]).is_file()  # the first epoch's state, kept for the retry

    monkeypatch.setattr(train_module, "_save_state", real_save)  # space freed: the same command again
    code, _, err = run(capsys, "sweep", str(path), "--storage", storage, "--out", str(tmp_path / "r"),
                       "--device", "cpu", "--threads", "1", "--workers", "1", "--n-trials", "1")
    assert code == 0, err
    retry = optuna.load_study(study_name="tiny", storage=storage).trials[1]
    record = record_of(retry)
    assert retry.user_attrs["retry_of"] == 0 and retry.params == failed.params
    assert record.status == "trained" and record.resumed_from_epoch == 1 and record.epochs == 2
    assert not Path(failed.user_attrs["state_file"]).exists()  # removed when the retry ended


def test_a_full_disk_under_the_storage_ends_the_command_with_one_line(capsys, tmp_path, monkeypatch):
    """Optuna cannot record the trial's end either (its bookkeeping asserts 'Should not reach'): one line naming
    the storage, exit 1; the trial stays running, for the heartbeat to retry in a later command."""
    import sqlite3

    import sqlalchemy.exc

    text = TINY_STUDY.replace('baselines = ["resnet20"]', "")
    path, storage = write(tmp_path, text), f"sqlite:///{tmp_path / 's.db'}"

    def full(self, *args, **kwargs):
        raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", full)
    code, _, err = run(capsys, "sweep", str(path), "--storage", storage, "--out", str(tmp_path / "r"),
                       "--device", "cpu", "--threads", "1", "--workers", "1")
    assert code == 1, err
    assert "Should not reach" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(
        f"resnet-bench sweep: failed: DiskFullError: no space left on the device of the storage {storage}")
    monkeypatch.undo()
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.RUNNING]
