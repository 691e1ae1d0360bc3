"""The sweep: study files, a real small study on the mini data set, resume, infeasible and failed trials."""

from __future__ import annotations

import json
import queue
import re
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

import resnet_bench as rb
from resnet_bench.correctness import unpack_correct
from resnet_bench.search import sweep as sweep_module
from resnet_bench.search.config import (
    StudyFileError,
    load_study_file,
)
from resnet_bench.search.records import FIELDS, TrialRecord
from resnet_bench.search.storage import locate_study
from resnet_bench.search.study import StudyMismatchError, open_study
from resnet_bench.search.sweep import Sweep, record_of
from resnet_bench.search.workers import TrialTickets, plan_workers
from resnet_bench.spec import ResNetSpec
from resnet_bench.train import TrainingDiverged

from .helpers import TINY_STUDY, run, write

# -- study files -------------------------------------------------------------------------------------------


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


def test_the_dry_run_counts_architectures_apart_from_a_continuous_recipe(capsys, tmp_path):
    text = TINY_STUDY.replace("batch_size = 256", "batch_size = 256\nlr = { low = 0.01, high = 0.05 }")
    code, out, err = run(capsys, "sweep", str(write(tmp_path, text)), "--dry-run", "--dry-run-samples", "4")
    assert code == 0, err
    assert "space of tiny: architectures: 8; recipes: continuous (a float range)" in out


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


def test_tickets_are_taken_once_each_under_concurrent_takers():
    import threading

    tickets, taken, start = TrialTickets(5), [], threading.Barrier(8)

    def taker():
        start.wait()
        while tickets.take():
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
    tickets = TrialTickets(3)
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


def stand_in_workers(monkeypatch, report):
    """Stands in for the worker processes: each, as it starts, sends what `report(job)` gives (its events) and
    ends with the exit code given with them. Returns the jobs started."""
    from resnet_bench.search import workers as workers_module

    started, events = [], queue.Queue()

    class Worker:
        def __init__(self, target, args, name):
            self.job, self.exitcode = args[0], None

        def start(self):
            started.append(self.job)
            sent, self.exitcode = report(self.job)
            for kind, *values in sent:
                events.put((self.job.index, kind, tuple(values)))

        def is_alive(self):
            return False

        def join(self):
            pass

    context = SimpleNamespace(Queue=lambda: events, Process=Worker, Value=lambda kind, n: SimpleNamespace(value=n))
    monkeypatch.setattr(workers_module.multiprocessing, "get_context", lambda method: context)
    return started


def a_summary(stopped="timeout"):
    from resnet_bench.search.sweep import SweepSummary

    return SweepSummary(study_name="tiny", storage="s", trained=0, infeasible=0, failed=0, seconds=0.0,
                        stopped=stopped)


@pytest.mark.parametrize("device, visible, given", [
    ("cuda:1", ["1", "1"], "cuda"),  # one named GPU: both workers on it, where it is their cuda:0
    ("cuda", ["0", "1", "2", "3", "0", "1", "2", "3"], "cuda"),  # every GPU, two workers each
])
def test_workers_on_gpus_see_the_gpus_the_command_names(capsys, tmp_path, monkeypatch, device, visible, given):
    """Stands in for four GPUs and for the worker processes: what each worker is started with."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    started = stand_in_workers(monkeypatch, lambda job: ([("summary", a_summary())], 0))
    code, out, err = run(capsys, "sweep", str(write(tmp_path, TINY_STUDY)), "--device", device, "--trials-per-gpu", "2",
                       "--n-trials", "8", "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert [job.visible_gpu for job in started] == visible
    assert all(job.device == given for job in started)
    # Why the command stopped is what its workers said (the wall clock here), not always "budget".
    assert f"stoppedbytimeout({len(visible)}workers)" in "".join(out.split())


def test_the_parent_draws_its_workers_trials_and_raises_a_workers_error_as_that_worker_met_it(capsys, tmp_path,
                                                                                            monkeypatch):
    """What workers send is drawn by the parent (a trial's line named by its worker); a worker's bad input is the
    command's (one line, exit 2), and any other failure names the worker and the error (exit 1)."""
    trial = SimpleNamespace(number=5, user_attrs={"status": "failed", "reason": "RuntimeError: out of memory",
                                                  "spec": "block=basic,layers=1-1"})
    stand_in_workers(monkeypatch, lambda job: ([("trial_start", 5, "block=basic,layers=1-1"), ("trial_end", trial),
                                                ("summary", a_summary("budget"))], 0) if job.index == 1 else (
        [("error", None, "ValueError: the second worker broke")], 1))
    study = str(write(tmp_path, TINY_STUDY))
    code, out, err = run(capsys, "sweep", study, "--workers", "2", "--device", "cpu", "--out", str(tmp_path / "o"))
    assert code == 1 and out == "", err
    assert "worker 1: trial 5 failed: block=basic,layers=1-1 RuntimeError: out of memory" in err
    assert err.strip().splitlines()[-1] == ("resnet-bench sweep: failed: RuntimeError: worker 2 of 2 failed: "
                                            "ValueError: the second worker broke (rerun with --debug)")
    stand_in_workers(monkeypatch, lambda job: ([("error", "BadInputError", "--device 'cuda:3' is not a GPU here")], 1))
    code, out, err = run(capsys, "sweep", study, "--workers", "2", "--device", "cpu", "--out", str(tmp_path / "o"))
    assert code == 2 and err.strip().splitlines()[-1] == ("resnet-bench sweep: error: --device 'cuda:3' is not a GPU "
                                                          "here")
    stand_in_workers(monkeypatch, lambda job: ([], -9))  # killed before it said anything
    code, out, err = run(capsys, "sweep", study, "--workers", "2", "--device", "cpu", "--out", str(tmp_path / "o"))
    assert code == 1 and "2 of 2 workers failed (exit codes [-9, -9])" in err


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
