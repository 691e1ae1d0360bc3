"""Where a study lives and what it may be resumed with: one storage rule for every command, a fingerprint of
everything that changes a measurement, the settings' history, baselines on one recipe, exit codes of storages."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import torch

from resnet_bench.search import sweep as sweep_module
from resnet_bench.search.config import load_study_file
from resnet_bench.search.storage import FINGERPRINT, FINGERPRINT_PARTS, SCHEMA_VERSION, SETTINGS_HISTORY, STUDY_FILE
from resnet_bench.search.study import StudyMismatchError, open_study
from resnet_bench.spec import ResNetSpec

from .helpers import TINY_STUDY, run, write


@pytest.fixture
def recipes_trained(monkeypatch):
    """Training stood in for (these tests are about where results go, not what they are): the recipes it saw."""
    seen = []

    def fake_train(model, data, recipe, device, **kwargs):
        seen.append(recipe)
        return SimpleNamespace(val_accuracy=0.5, test_accuracy=0.5, epochs=recipe.epochs, train_seconds=0.01,
                               resumed_from_epoch=0, images_per_second=1.0, device="cpu", compile_seconds=0.0,
                               stopped_early=False, val_correct="", precision=recipe.precision,
                               memory_format="nchw", threads=1, history_rows=lambda: [])

    monkeypatch.setattr(sweep_module, "train", fake_train)
    return seen


# -- one storage rule: every pairing of sweep and report ---------------------------------------------------------

PAIRINGS = {
    # name: (sweep's arguments, report's arguments, the study's folder)
    "default": ([], [], "reports/quickstart"),
    "a study file": (["{file}"], ["{file}"], "reports/tiny"),
    "--study-name": (["{file}", "--study-name", "foo"], ["--study-name", "foo"], "reports/foo"),
    "--out": (["{file}", "--out", "elsewhere"], ["{file}", "--out", "elsewhere"], "elsewhere/tiny"),
    "--study-name and --out": (["{file}", "--study-name", "foo", "--out", "elsewhere"],
                               ["--study-name", "foo", "--out", "elsewhere"], "elsewhere/foo"),
    "--storage": (["{file}", "--storage", "{url}"], ["--storage", "{url}"], "reports/tiny"),
    "--storage and a study file": (["{file}", "--storage", "{url}"], ["{file}", "--storage", "{url}"],
                                   "reports/tiny"),
}


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_report_finds_the_study_that_sweep_wrote(capsys, tmp_path, monkeypatch, recipes_trained, pairing):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "db").mkdir()
    file, url = str(write(tmp_path, TINY_STUDY)), f"sqlite:///{tmp_path / 'db' / 'shared.db'}"
    sweep_args, report_args, folder = PAIRINGS[pairing]
    sweep_args = [a.format(file=file, url=url) for a in sweep_args]
    report_args = [a.format(file=file, url=url) for a in report_args]
    code, out, err = run(capsys, "sweep", *sweep_args, "--n-trials", "1", "--device", "cpu")
    assert code == 0, err
    code, out, err = run(capsys, "report", *report_args, "--format", "json")
    assert code == 0, err
    assert [r["status"] for r in json.loads(out)] == ["trained"]
    assert (tmp_path / folder / "study.db").is_file() == ("--storage" not in sweep_args)
    assert pd.read_csv(tmp_path / folder / "trials.csv")["status"].tolist() == ["trained"]


def test_the_sweep_names_the_report_command_that_reads_its_study(capsys, tmp_path, monkeypatch, recipes_trained):
    monkeypatch.chdir(tmp_path)
    file = str(write(tmp_path, TINY_STUDY))
    code, out, err = run(capsys, "sweep", file, "--study-name", "foo", "--out", "elsewhere", "--n-trials", "1",
                         "--device", "cpu")
    assert code == 0, err
    # Whole, on its own line, whatever the terminal's width: safe to copy.
    assert f"\nresnet-bench report {file} --study-name foo --out elsewhere\n" in out
    code, _, err = run(capsys, "report", file, "--study-name", "foo", "--out", "elsewhere")
    assert code == 0, err


# -- resume, never mix ------------------------------------------------------------------------------------------

CHANGES = [  # (what the file changes, the words of the refusal)
    (("epochs = 1", "epochs = 30"), "recipe.epochs: 1 -> 30"),
    (("val_size = 500", "val_size = 200"), "val_size: 500 -> 200"),
    (("seed = 0", "seed = 7"), "seed: 0 -> 7"),
    (("val_size = 500", "val_size = 500\nimage_size = 64"), "image_size: 32 -> 64"),
    (('name = "fast"', 'name = "he2015"'), "recipe.name: fast -> he2015"),
    (("batch_size = 256", "batch_size = 256\nlr = { low = 0.05, high = 0.2 }"), "recipe.lr: 0.2 -> {"),
    (("stem_width = [4, 8]", "stem_width = [4, 16]"), "space.stem_width: [4, 8] -> [4, 16]"),
    (('dataset = "fashion-mnist-mini"', 'dataset = "fashion-mnist"'), "dataset: fashion-mnist-mini -> fashion-mnist"),
]


@pytest.mark.parametrize("change, words", CHANGES, ids=[w for _, w in CHANGES])
def test_a_study_file_that_measures_differently_is_refused_field_by_field(capsys, tmp_path, change, words):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    open_study(load_study_file(write(tmp_path, TINY_STUDY)), storage)
    changed = write(tmp_path, TINY_STUDY.replace(*change), "changed.toml")
    with pytest.raises(StudyMismatchError, match="measured under other conditions"):
        open_study(load_study_file(changed), storage)
    code, out, err = run(capsys, "sweep", str(changed), "--storage", storage, "--device", "cpu")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert words in err and "--study-name" in err


def test_what_changes_no_measurement_may_change_and_the_study_keeps_its_history(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study(load_study_file(write(tmp_path, TINY_STUDY)), storage)
    assert len(study.user_attrs[SETTINGS_HISTORY]) == 1
    again = open_study(load_study_file(write(tmp_path, TINY_STUDY)), storage)  # unchanged: nothing to record
    assert len(again.user_attrs[SETTINGS_HISTORY]) == 1
    text = (TINY_STUDY.replace("n_trials = 2", "n_trials = 5").replace("max_params = 300000", "max_params = 200000")
            .replace('name = "random"', 'name = "tpe"')
            .replace('baselines = ["resnet20"]', 'baselines = ["resnet20", "resnet32"]')
            + "\n[report]\nreference_point = { val_accuracy = 0.0, params = 400000 }\n")
    resumed = open_study(load_study_file(write(tmp_path, text, "more.toml")), storage)
    history = resumed.user_attrs[SETTINGS_HISTORY]
    assert len(history) == 2 and history[0]["constraints"] == {"max_params": 300000.0}
    assert history[1]["constraints"] == {"max_params": 200000.0} and history[1]["n_trials"] == 5
    assert history[1]["sampler"] == "tpe" and history[1]["reference_point"] == {"val_accuracy": 0.0, "params": 400000.0}
    assert resumed.user_attrs[STUDY_FILE] == text  # the report reads the latest constraints and reference point
    assert [t.user_attrs["baseline"] for t in resumed.trials] == ["resnet20", "resnet32"]  # the new one enqueued


def _earlier_release_study(storage: str, config) -> None:
    """A study as the previous release stored it: a fingerprint of the space, objectives and data set only."""
    study = optuna.create_study(study_name=config.name, storage=storage,
                                directions=[o.direction for o in config.objectives])
    parts = config.fingerprint_parts()
    study.set_user_attr(FINGERPRINT, "0123456789abcdef")
    study.set_user_attr(FINGERPRINT_PARTS, {k: parts[k] for k in ("space", "objectives", "dataset")})
    study.set_user_attr(STUDY_FILE, config.source)


def test_a_study_of_the_earlier_release_resumes_if_nothing_changed_and_opens_in_report(capsys, tmp_path):
    config = load_study_file(write(tmp_path, TINY_STUDY))
    old, older = f"sqlite:///{tmp_path / 'old.db'}", f"sqlite:///{tmp_path / 'older.db'}"
    _earlier_release_study(old, config)
    code, out, err = run(capsys, "report", "--storage", old, "--out", str(tmp_path / "r"), "--format", "json")
    assert code == 0 and json.loads(out) == [], err
    assert "schema_version" not in optuna.load_study(study_name="tiny", storage=old).user_attrs  # read, unchanged
    study = open_study(config, old)  # same conditions: resumed, and its fingerprint brought up to date
    assert study.user_attrs[FINGERPRINT] == config.fingerprint()
    assert set(study.user_attrs[FINGERPRINT_PARTS]) >= {"recipe", "seed", "val_size", "image_size"}
    assert study.user_attrs["schema_version"] == SCHEMA_VERSION == 2  # upgraded once, and said so
    _earlier_release_study(older, config)
    longer = load_study_file(write(tmp_path, TINY_STUDY.replace("epochs = 1", "epochs = 30"), "longer.toml"))
    with pytest.raises(StudyMismatchError, match="recipe.epochs: 1 -> 30"):
        open_study(longer, older)


def test_a_study_written_by_a_later_release_is_refused_by_every_command_untouched(capsys, tmp_path):
    path = write(tmp_path, TINY_STUDY)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study(load_study_file(path), storage)
    assert study.user_attrs["schema_version"] == SCHEMA_VERSION  # a new study says its version
    study.set_user_attr("schema_version", SCHEMA_VERSION + 1)
    said = (f"study 'tiny' was written by a later release of resnet-bench (schema version {SCHEMA_VERSION + 1}; "
            f"this release reads up to {SCHEMA_VERSION}): upgrade resnet-bench to read it")
    for command in (["sweep", str(path), "--device", "cpu"], ["report", str(path), "--out", str(tmp_path / "r")],
                    ["confirm", str(path), "--device", "cpu"]):
        code, out, err = run(capsys, *command, "--storage", storage)
        assert code == 2 and err.strip().splitlines()[-1] == f"resnet-bench {command[0]}: error: {said}", err
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert len(trials) == 1 and trials[0].state == optuna.trial.TrialState.WAITING  # the queued baseline, only


# -- baselines train with the study's base recipe ----------------------------------------------------------------

def test_baselines_share_the_base_recipe_while_candidates_sample_theirs(capsys, tmp_path, recipes_trained):
    text = TINY_STUDY.replace("batch_size = 256", "batch_size = 256\nlr = { low = 0.01, high = 0.05 }").replace(
        'baselines = ["resnet20"]',
        'baselines = ["resnet20", "resnet20,shortcut=B", "block=basic,layers=1-1,stem=cifar,stem_width=16"]'
    ).replace("width_multiplier = [1, 64]", "")  # a preset, a preset with a field replaced, a one-line spec
    path = write(tmp_path, text)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    code, _, err = run(capsys, "sweep", str(path), "--storage", storage, "--n-trials", "5", "--device", "cpu")
    assert code == 0, err
    records = [t.user_attrs for t in optuna.load_study(study_name="tiny", storage=storage).trials]
    baselines = [r["recipe"] for r in records if r.get("baseline")]
    sampled = [r["recipe"] for r in records if not r.get("baseline") and r["status"] == "trained"]
    assert len(baselines) == 3 and baselines[0] == baselines[1] == baselines[2] and baselines[0]["lr"] == 0.2
    assert len(sampled) == 2 and all(0.01 <= r["lr"] <= 0.05 for r in sampled)
    assert [r.lr for r in recipes_trained][:3] == [0.2, 0.2, 0.2]  # fast's lr
    specs = {r["baseline"]: r["spec"] for r in records if r.get("baseline")}
    assert ResNetSpec.parse(specs["resnet20,shortcut=B"]) == dataclasses.replace(
        ResNetSpec.parse(specs["resnet20"]), shortcut="B")
    assert specs["block=basic,layers=1-1,stem=cifar,stem_width=16"] == \
        "block=basic,layers=1-1,stem=cifar,stem_width=16,in_channels=1,num_classes=10"
    code, out, err = run(capsys, "report", str(path), "--storage", storage, "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "base recipe: fast, epochs=1, batch_size=256" in " ".join(out.replace("│", " ").split())


# -- the dry run and latency --------------------------------------------------------------------------------------

def test_the_dry_run_says_it_cannot_check_a_latency_bound(capsys, tmp_path):
    path = write(tmp_path, TINY_STUDY.replace("max_params = 300000", "max_params = 300000\nmax_latency_ms = 5"))
    code, out, err = run(capsys, "sweep", str(path), "--dry-run", "--dry-run-samples", "8", "--format", "json")
    assert code == 0, err
    assert json.loads(out)[0]["unchecked"] == ["max_latency_ms"]
    code, out, err = run(capsys, "sweep", str(path), "--dry-run", "--dry-run-samples", "8")
    said = " ".join(out.split())
    assert code == 0 and "max_latency_ms = 5 is not checked by the dry run" in said and "upper bound" in said
    code, out, _ = run(capsys, "sweep", str(write(tmp_path, TINY_STUDY, "plain.toml")), "--dry-run",
                       "--dry-run-samples", "8", "--format", "json")
    assert json.loads(out)[0]["unchecked"] == []


# -- storages that cannot be opened: bad input (2) or a failure (1) ------------------------------------------------


# -- the report never pays for torch ------------------------------------------------------------------------------

def test_report_imports_neither_torch_nor_torchvision(tmp_path):
    """A study on full Fashion-MNIST, whose report places published results (costs on 1-channel 28 px images)."""
    text = TINY_STUDY.replace('dataset = "fashion-mnist-mini"', 'dataset = "fashion-mnist"')
    config = load_study_file(write(tmp_path, text))
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study(config, storage)
    trial = study.ask()
    for key, value in {"status": "trained", "spec": "block=basic,layers=1-1,stem=cifar,stem_width=4,in_channels=1,"
                       "num_classes=10", "dataset": "fashion-mnist", "input_size": 28, "val_accuracy": 0.8,
                       "val_images": 500, "params": 1382, "gflops": 0.0004}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, [0.8, 1382])
    code = (f"import sys; from resnet_bench.cli import main; assert main(['report', '--storage', {storage!r}, "
            f"'--out', {str(tmp_path / 'r')!r}]) == 0; "
            "print(sorted(m for m in ('torch', 'torchvision', 'fvcore') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "Published results on fashion-mnist" in (tmp_path / "r" / "tiny" / "report.md").read_text()
    modules = ("import sys, resnet_bench.search.config, resnet_bench.search.trials, resnet_bench.search.study, "
               "resnet_bench.report.analysis, resnet_bench.recipe; "
               "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", modules], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the caption counts this command's trials ----------------------------------------------------------------------

@pytest.mark.slow
def test_the_caption_counts_this_commands_trials_not_another_commands(capsys, tmp_path):
    """Two worker processes train 2 trials; meanwhile another command adds a trial to the same study."""
    path = write(tmp_path, TINY_STUDY.replace('baselines = ["resnet20"]', "").replace("width_multiplier = [1, 64]", ""))
    storage = f"sqlite:///{tmp_path / 's.db'}"
    added = threading.Event()

    def another_command() -> None:
        for _ in range(600):
            try:
                study = optuna.load_study(study_name="tiny", storage=storage)
                break
            except Exception:  # not made yet (the tables, or the study in them)
                time.sleep(0.1)
        time.sleep(1.0)  # after the workers started
        trial = study.ask()
        for key, value in {"status": "trained", "spec": "block=basic,layers=1-1,stem=cifar,stem_width=4,"
                           "in_channels=1,num_classes=10", "val_accuracy": 0.1, "val_images": 500, "params": 1382,
                           "gflops": 0.0004, "input_size": 28, "dataset": "fashion-mnist-mini"}.items():
            trial.set_user_attr(key, value)
        study.tell(trial, [0.1, 1382])
        added.set()

    other = threading.Thread(target=another_command)
    other.start()
    threads = torch.get_num_threads()
    try:
        code, out, err = run(capsys, "sweep", str(path), "--storage", storage, "--workers", "2", "--n-trials", "2",
                             "--device", "cpu")
    finally:  # the command divides this process's threads among its workers: later tests in it keep theirs
        torch.set_num_threads(threads)
    other.join()
    assert code == 0 and added.is_set(), err
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert sum(t.user_attrs.get("status") == "trained" for t in trials) == 3
    assert "thiscommand:2trained(0stoppedearly,0failed)" in "".join(out.split())


def test_the_study_names_its_metrics_for_optuna_dashboard(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_study(load_study_file(write(tmp_path, TINY_STUDY)), url)
    open_study(load_study_file(write(tmp_path, TINY_STUDY)), url)  # resumed: set once, unchanged
    assert optuna.load_study(study_name="tiny", storage=url).metric_names == ["val_accuracy", "params"]


def test_a_baseline_is_enqueued_with_its_place_in_the_space(tmp_path):
    """resnet20 in a space of 3 stages of 1-5 blocks: every parameter that describes it, none it cannot take."""
    from resnet_bench.search.config import load_study_file
    from resnet_bench.search.study import open_study

    text = (TINY_STUDY.replace("stages = 2", "stages = [2, 3]").replace("blocks = 1", "blocks = { low = 1, high = 5 }")
            .replace("stem_width = [4, 8]", "stem_width = [8, 16]"))
    config = load_study_file(str(write(tmp_path, text)))
    study = open_study(config, f"sqlite:///{tmp_path / 'study.db'}")
    (waiting,) = study.get_trials(deepcopy=False)
    assert waiting.user_attrs["baseline"] == "resnet20"
    trial = study.ask()  # the enqueued baseline; a sweep records its parameters as it proposes it
    from resnet_bench.search.space import suggest_baseline

    suggest_baseline(trial, config)
    assert trial.params == {"stages": 3, "blocks_1": 3, "blocks_2": 3, "blocks_3": 3, "stem_width": 16,
                            "width_multiplier": 1, "shortcut": "A"}


def test_each_queued_trial_goes_to_one_worker_on_sqlite(tmp_path):
    """Workers on one SQLite file each take a queued trial (a baseline, a retry) once: SQLite ignores Optuna's
    "for update", and before its transactions took the lock at their start, 4 threads popping 60 queued trials took
    18 of them twice (two workers trained the baseline; the second failed with "Cannot tell a COMPLETE trial")."""
    import collections
    import warnings

    from resnet_bench.search.storage import open_storage

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="queue")
    for i in range(60):
        study.enqueue_trial({"x": i})
    taken, start = collections.Counter(), threading.Barrier(4)

    def worker():
        own = optuna.load_study(study_name="queue", storage=open_storage(url))  # its own engine, as a process has
        start.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's note that heartbeats are meant for optimize()
            while (trial := own.ask()).number < 60:
                taken[trial.number] += 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(60)) and set(taken.values()) == {1}, [n for n, c in taken.items() if c > 1]
