"""Where a study lives and how its storage opens: a name that never leaves --out, a server that cannot be reached,
a malformed URL, the installed driver."""

from __future__ import annotations

import pytest

from .helpers import TINY_STUDY, run, write
from .postgres import free_port


@pytest.mark.parametrize("command", ["sweep", "report"])
def test_a_server_that_cannot_be_reached_is_exit_1_naming_the_host_but_never_the_password(capsys, tmp_path, command):
    port = free_port()  # nothing listens there
    url = f"postgresql://bench:hunter2@127.0.0.1:{port}/resnet_bench"
    code, out, err = run(capsys, command, str(write(tmp_path, TINY_STUDY)), "--storage", url, "--device", "cpu") \
        if command == "sweep" else run(capsys, command, "--storage", url, "--study-name", "tiny")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert f"127.0.0.1:{port}" in err and "cannot be reached" in err and "hunter2" not in err


@pytest.mark.parametrize("url, words", [
    ("not a url", ["is not a storage URL", "sqlite:///"]),
    ("nosuchdb://nowhere", ["is not a storage URL"]),
    ("mysql://bench:hunter2@127.0.0.1/db", ["needs a database driver that is not installed",
                                           "pip install 'resnet-bench[postgres]'"]),
    ("sqlite:///{tmp}/no/such/folder/s.db", ["does not exist", "create it"]),
])
def test_a_malformed_url_or_a_missing_driver_is_exit_2_with_the_fix(capsys, tmp_path, url, words):
    url = url.replace("{tmp}", str(tmp_path))
    code, out, err = run(capsys, "sweep", str(write(tmp_path, TINY_STUDY)), "--storage", url, "--device", "cpu")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words) and "hunter2" not in err, err


def test_a_plain_postgresql_url_gets_the_installed_driver():
    from resnet_bench.search.storage import with_driver

    assert with_driver("postgresql://u:p@host/db") == "postgresql+psycopg://u:p@host/db"
    assert with_driver("postgres://host/db") == "postgresql+psycopg://host/db"
    assert with_driver("postgresql+psycopg2://host/db") == "postgresql+psycopg2://host/db"  # an explicit driver kept
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("command", [["sweep", "--n-trials", "1", "--device", "cpu"], ["report"],
                                     ["confirm", "--device", "cpu"]])
def test_a_study_name_never_leaves_out(capsys, tmp_path, command):
    out = tmp_path / "out"
    code, _, err = run(capsys, *command, "--study-name", "../../escaped", "--out", str(out))
    assert code == 2 and err.strip().endswith(
        "study name '../../escaped' is not accepted; use letters, digits, '_', '-' and '.', starting with a letter "
        "or digit (one folder name)") and len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "escaped").exists()


def test_a_reading_command_finds_its_study_by_name_then_file_then_the_one_in_the_storage(tmp_path):
    import optuna

    from resnet_bench.search.config import load_study_file
    from resnet_bench.search.storage import study_to_read, study_to_write

    path = write(tmp_path, TINY_STUDY)
    storage = f"sqlite:///{tmp_path / 'one.db'}"
    optuna.create_study(study_name="only-one", storage=storage)
    assert study_to_read(None, storage=storage)[1].name == "only-one"  # the one study the storage holds
    config, location = study_to_read(str(path), storage=storage, out=tmp_path)
    assert config.name == "tiny" and location.name == "tiny" and location.folder == tmp_path / "tiny"
    assert study_to_read(str(path), study_name="other", out=tmp_path)[1].name == "other"  # --study-name first
    assert study_to_read(None, out=tmp_path)[1].name == load_study_file(None).name  # else the quickstart
    assert study_to_write(config, out=tmp_path) == study_to_read(str(path), out=tmp_path)[1]
    assert study_to_write(config, study_name="other", out=tmp_path).name == "other"
