"""Many workers, one study: PostgreSQL, worker processes, a killed worker's trial retried from its checkpoint,
and Ctrl-C. Real processes, a real server; nothing here is skipped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from resnet_bench.search.records import TrialRecord

pytestmark = pytest.mark.slow

STUDY = """
name = "{name}"
dataset = "fashion-mnist-mini"
val_size = 500

[[objectives]]
metric = "val_accuracy"

[[objectives]]
metric = "params"

[space]
stages = 2
blocks = [1, 2]
stem = "cifar"
stem_width = [4, 8]
block = "basic"
shortcut = ["A", "B"]

[recipe]
name = "fast"
epochs = {epochs}
batch_size = 256

[sampler]
name = "tpe"
"""


def study_file(tmp_path: Path, name: str, epochs: int) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(name=name, epochs=epochs))
    return path


def sweep(path: Path, storage: str, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "resnet_bench", "sweep", str(path), "--storage", storage, "--out", str(out),
            "--device", "cpu", "--threads", "1", "--format", "json", *args]


def trials(name: str, storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def wait_for_state_file(folder: Path, process: subprocess.Popen, seconds: float = 120) -> Path:
    """The first per-epoch training state: a trial is running and has finished an epoch."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = list(folder.glob("**/*.state"))
        if found:
            return found[0]
        assert process.poll() is None, "the worker ended before a trial finished an epoch"
        time.sleep(0.2)
    raise AssertionError("no trial finished an epoch in time")


def test_two_commands_share_one_study_on_postgres(postgres_url, tmp_path):
    path = study_file(tmp_path, "shared", epochs=1)
    commands = [subprocess.Popen(sweep(path, postgres_url, tmp_path, "--n-trials", "3"), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for c in commands:
        _, err = c.communicate(timeout=600)
        assert c.returncode == 0, err
    done = trials("shared", postgres_url)
    numbers = [t.number for t in done]
    assert numbers == list(range(len(done)))  # every number once: none lost, none duplicated
    assert all(t.state.is_finished() for t in done)
    assert sum(TrialRecord.from_attrs(t.user_attrs).status == "trained" for t in done) == 6  # 3 + 3


def test_workers_option_on_sqlite_divides_trials_and_threads(tmp_path):
    path = study_file(tmp_path, "local", epochs=1)
    storage = f"sqlite:///{tmp_path / 'local.db'}"
    done = subprocess.run(sweep(path, storage, tmp_path, "--n-trials", "3", "--workers", "2"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    records = [TrialRecord.from_attrs(t.user_attrs) for t in trials("local", storage)]
    assert sum(r.status == "trained" for r in records) == 3
    # The parent draws what its workers send: one line per trial, named by its worker; its stdout is its result.
    lines = [line for line in done.stderr.splitlines() if re.match(r"worker [12]: trial \d+ trained in ", line)]
    assert len(lines) == 3 and {line[:8] for line in lines} == {"worker 1", "worker 2"}, done.stderr
    assert isinstance(json.loads(done.stdout), list)
    assert all(r.threads == 1 for r in records if r.status == "trained")


def test_a_killed_worker_is_retried_from_its_checkpoint(postgres_url, tmp_path):
    path = study_file(tmp_path, "killed", epochs=6)
    first = subprocess.Popen(sweep(path, postgres_url, tmp_path, "--n-trials", "1", "--heartbeat", "1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = wait_for_state_file(tmp_path / "killed", first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    running = [t for t in trials("killed", postgres_url) if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) == 1 and state.is_file()
    time.sleep(2.5)  # past the grace period (twice the heartbeat)

    done = subprocess.run(sweep(path, postgres_url, tmp_path, "--n-trials", "2", "--heartbeat", "1"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    after = trials("killed", postgres_url)
    killed = after[running[0].number]
    # Said in the project's words, without a library's warning.
    assert (f"trial {killed.number}: its worker was silent for over 2 s (killed, or its machine lost): failed, and "
            "queued again to resume from its last saved epoch") in done.stderr
    assert "Warning" not in done.stderr and "site-packages" not in done.stderr
    assert killed.state == optuna.trial.TrialState.FAIL
    retries = [t for t in after if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    record = TrialRecord.from_attrs(retries[0].user_attrs)
    assert record.status == "trained" and record.resumed_from_epoch >= 1 and record.epochs == 6
    assert record.spec == TrialRecord.from_attrs(killed.user_attrs).spec  # the same network, continued
    assert sum(TrialRecord.from_attrs(t.user_attrs).status == "trained" for t in after) == 2
    assert not state.exists()  # removed when the retried trial ended


def test_a_worker_killed_on_one_machine_resumes_on_another_from_the_shared_state(postgres_url, tmp_path):
    """Two "machines": two --out folders (each its own disk), one PostgreSQL study and one shared --artifacts
    folder. Machine A is killed mid-trial and its disk lost; machine B retries the trial from A's last epoch."""
    import shutil

    path = study_file(tmp_path, "moved", epochs=6)
    shared, disk_a, disk_b = tmp_path / "shared", tmp_path / "a", tmp_path / "b"
    first = subprocess.Popen(sweep(path, postgres_url, disk_a, "--n-trials", "1", "--heartbeat", "1",
                                   "--artifacts", str(shared)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(shared.glob("moved-trial-*.state")):
        assert first.poll() is None and time.monotonic() < deadline, "no epoch's state was shared in time"
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    shutil.rmtree(disk_a)  # machine A is gone, and its files with it
    time.sleep(2.5)  # past the grace period (twice the heartbeat)

    done = subprocess.run(sweep(path, postgres_url, disk_b, "--n-trials", "1", "--heartbeat", "1",
                                "--artifacts", str(shared)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    after = trials("moved", postgres_url)
    retry = next(t for t in after if t.system_attrs.get("failed_trial") == 0)
    record = TrialRecord.from_attrs(retry.user_attrs)
    assert record.status == "trained" and record.resumed_from_epoch >= 1 and record.epochs == 6
    assert Path(record.state_file).parent == disk_b / "moved" / "states"  # machine B's own file
    assert not list(shared.iterdir())  # the shared state removed when the trial ended


def test_artifacts_must_be_a_folder(capsys, tmp_path):
    from .helpers import run

    path = study_file(tmp_path, "bad", epochs=1)
    code, _, err = run(capsys, "sweep", str(path), "--artifacts", "s3://bucket/states", "--out", str(tmp_path))
    assert code == 2 and "--artifacts 's3://bucket/states' is not accepted" in err and len(err.splitlines()) == 1


def test_ctrl_c_marks_the_trial_failed_exits_130_and_the_same_command_resumes_it_from_its_last_epoch(tmp_path):
    path = study_file(tmp_path, "interrupted", epochs=6)
    storage = f"sqlite:///{tmp_path / 'i.db'}"
    # A shell without job control starts background commands with SIGINT ignored, and Python then keeps it
    # ignored: give the command the default disposition that a terminal's Ctrl-C meets.
    process = subprocess.Popen(sweep(path, storage, tmp_path, "--n-trials", "2"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state = wait_for_state_file(tmp_path, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    done = trials("interrupted", storage)  # the storage opens: intact
    assert len(done) == 1 and done[0].state == optuna.trial.TrialState.FAIL
    record = TrialRecord.from_attrs(done[0].user_attrs)
    assert record.status == "failed" and record.reason == "interrupted (Ctrl-C)" and record.spec
    assert state.is_file()  # kept for the resume

    again = subprocess.run(sweep(path, storage, tmp_path, "--n-trials", "1"), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    retry = trials("interrupted", storage)[1]
    resumed = TrialRecord.from_attrs(retry.user_attrs)
    assert retry.user_attrs["retry_of"] == 0 and retry.params == done[0].params
    assert resumed.status == "trained" and resumed.resumed_from_epoch >= 1 and resumed.epochs == 6
    assert not state.exists()  # removed when the resumed trial ended


def test_workers_that_meet_an_empty_database_at_once_all_open_it(postgres_url):
    """Optuna creates its tables on first use; concurrent first uses race, and every one must still open."""
    import sqlalchemy

    from resnet_bench.search.storage import open_storage

    fresh = postgres_url.rsplit("/", 1)[0] + "/race"
    admin = sqlalchemy.create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text("create database race"))
    code = f"from resnet_bench.search.storage import open_storage; open_storage({fresh!r})"
    processes = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in processes:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    open_storage(fresh)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test's own stand-in worker asks outside optimize
def test_a_sweep_says_which_trials_a_silent_worker_holds_and_when_they_are_retried(tmp_path):
    """Run again at once after a kill -9, a sweep finds the killed worker's trial still running (the heartbeat's
    grace): it says so, and when that trial will be retried, instead of saying nothing."""
    path = study_file(tmp_path, "held", epochs=1)
    storage = f"sqlite:///{tmp_path / 'h.db'}"
    from resnet_bench.search.config import load_study_file
    from resnet_bench.search.storage import open_storage
    from resnet_bench.search.study import open_study

    open_study(load_study_file(str(path)), storage, "held")  # as a sweep makes it
    backend = open_storage(storage, heartbeat_seconds=30)
    study = optuna.load_study(study_name="held", storage=backend)
    held = study.ask()
    backend.record_heartbeat(held._trial_id)  # a worker that beat once, then died
    done = subprocess.run(sweep(path, storage, tmp_path, "--n-trials", "1"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith(f"trial {held.number} is held"))
    assert re.fullmatch(rf"trial {held.number} is held by a worker last heard from \d+ s ago \(running elsewhere, "
                        r"or killed\): once silent for 60 s \(twice --heartbeat\) it is failed and trained again "
                        r"from its last saved epoch, when a worker of this command or a later one starts its next "
                        r"trial", line)
