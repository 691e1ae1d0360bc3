"""The `resnet-bench` command end to end: results on stdout, one-line errors on stderr, exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from .helpers import run


def test_profile_json_is_one_document(capsys):
    code, out, err = run(capsys, "profile", "resnet50",
                         "block=basic,layers=3-3-3,stem=cifar,stem_width=16,num_classes=10", "--format", "json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert [r["params"] for r in rows] == [25_557_032, 272_474]
    assert rows[0]["spec"] == "block=bottleneck,layers=3-4-6-3"
    assert round(rows[0]["gflops"], 3) == 4.089 and rows[0]["input_size"] == 224 and rows[1]["input_size"] == 32
    assert [s["name"] for s in rows[0]["stages"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


def test_profile_of_the_modern_presets_side_by_side(capsys):
    code, out, err = run(capsys, "profile", "resnet50", "resnet50d", "seresnet50", "resnet20,pad=both,drop_path=0.1",
                         "--format", "json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert [r["params"] for r in rows] == [25_557_032, 25_576_264, 28_088_024, 269_722]  # timm's counts
    assert rows[1]["spec"] == "block=bottleneck,layers=3-4-6-3,stem=deep,downsample=avgpool"
    assert rows[2]["spec"] == "block=bottleneck,layers=3-4-6-3,se_ratio=0.0625"
    assert rows[3]["spec"].endswith("shortcut=A,pad=both,drop_path=0.1,num_classes=10")
    assert round(rows[1]["gflops"], 3) == 4.329 and round(rows[2]["gflops"], 3) == 4.092


@pytest.mark.parametrize(
    "model, words",
    [
        ("block=basic,layers=2-2,se_ratio=2", ["se_ratio=2.0", "[0, 1)"]),
        ("block=basic,layers=2-2,se_ratio=-0.1", ["se_ratio=-0.1", "[0, 1)"]),
        ("block=basic,layers=2-2,drop_path=1", ["drop_path=1.0", "[0, 1)"]),
        ("block=basic,layers=2-2,downsample=pool", ["downsample='pool'", "conv, avgpool"]),
        ("resnet20,downsample=avgpool", ["downsample='avgpool'", "shortcut=A", "shortcut=B or C"]),
        ("plain20,downsample=avgpool", ["downsample='avgpool'", "shortcut=none", "shortcut=B or C"]),
        ("resnet20_b,pad=both", ["pad='both'", "shortcut=B", "shortcut=A"]),
    ],
)
def test_profile_refuses_a_modern_field_out_of_range_in_one_line(capsys, model, words):
    code, out, err = run(capsys, "profile", model)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_profile_options(capsys):
    code, out, _ = run(capsys, "profile", "resnet20", "--input-size", "64", "--in-channels", "1",
                       "--latency", "--train", "--batch-size", "4", "--runs", "2", "--format", "json")
    row = json.loads(out)[0]
    assert code == 0 and row["input_size"] == 64 and row["in_channels"] == 1
    assert row["device"] == "cpu" and row["batch_size"] == 4 and row["runs"] == 2 and row["train_throughput"] > 0
    code, out, _ = run(capsys, "profile", "resnet20", "resnet56", "--by-stage", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["model"], r["name"]) for r in rows][:2] == [("resnet20", "stem"), ("resnet20", "layer1")]
    assert len(rows) == 10 and sum(int(r["params"]) for r in rows[:5]) == 269_722


def test_models_csv_lists_every_preset(capsys):
    from resnet_bench import presets

    code, out, _ = run(capsys, "models", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["name"] for r in rows] == presets.names()
    assert rows[0]["gflops"] == "1.814073" and rows[0]["top1_error_pct_imagenet"] == "30.242"
    assert rows[0]["top1_error_pct_cifar10"] == "" and rows[0]["top1_error_pct_fashion_mnist"] == "5.1"
    code, out, _ = run(capsys, "models", "--family", "wrn", "--format", "json")
    wrn = json.loads(out)
    assert [r["name"] for r in wrn] == ["wrn16_8", "wrn28_10", "wrn40_4"]
    assert (wrn[1]["top1_error_pct_cifar10"], wrn[1]["top1_error_pct_cifar100"]) == (4.0, 19.25)
    assert "Table 5" in wrn[1]["source_cifar10"] and "Xiao" in wrn[1]["source_fashion_mnist"]


def test_models_table_has_one_error_column_per_data_set_each_figure_marked_with_its_source(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, "models")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(h in lines[1] for h in ("ImageNet", "CIFAR-10", "CIFAR-100", "F-MNIST")) and "top-1" in out
    row = {line.split()[0]: line for line in lines if line.split()}
    # Two decimals everywhere; the 16.75 of resnext101_64x4d came with torchvision's newer recipe: its own mark.
    assert row["resnet18"].split()[-2:] == ["30.24¹", "5.10²"] and row["resnet50"].split()[-1] == "23.87¹"
    assert row["resnext50_32x4d"].split()[1:3] == ["25.03M", "4.2305"]  # GFLOPs as every table prints them
    assert row["resnext101_64x4d"].split()[-1] == "16.75³" and row["wrn28_10"].split()[-3:] == ["4.00⁸", "19.25⁸",
                                                                                                 "4.10²"]
    assert "1. torchvision's weights, original recipe" in out and "3. torchvision's weights, newer recipe" in out
    assert "4. He et al. 2015, Table 6" in out and "8. Zagoruyko & Komodakis 2016, Table 5" in out


def test_table_goes_to_stdout(capsys):
    code, out, err = run(capsys, "profile", "resnet20", "resnext50_32x4d", "--by-stage")
    assert code == 0 and "269,722" in out and "25,028,904" in out and "4.230" in out and err == ""
    assert "resnet20 by stage" in out and "64x8x8" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["profile", "resnet51"], ["unknown model 'resnet51'", "resnet50"]),
        (["profile", "block=bottleneck,groups=0"], ["groups=0", ">= 1"]),
        (["profile", "block=basic,layers=3-0-3"], ["layers[1]=0"]),
        (["profile", "block=dense,layers=2"], ["block='dense'", "preact_bottleneck"]),
        (["profile", "block=basic,shortcut=D"], ["shortcut='D'", "none"]),
        (["profile", "block=basic,depth=3"], ["unknown spec field 'depth'"]),
        (["profile", "block=basic,groups=32"], ["groups=32 is a bottleneck option"]),
        (["profile", "missing.json"], ["'missing.json' does not exist"]),
        (["profile", "resnet20", "--format", "xml"], ["--format 'xml'", "table, json, csv"]),
        (["profile", "resnet20", "--input-size", "0"], ["--input-size=0", ">= 1"]),
        (["profile", "resnet20", "--input-size", "-32"], ["--input-size=-32"]),
        (["profile", "resnet20", "--batch-size", "x", "--latency"], ["--batch-size='x'"]),
        (["profile", "resnet20", "--latency", "--device", "tpu"], ["device='tpu'", "cpu, cuda or cuda:N"]),
        (["profile", "resnet20", "--latency", "--dtype", "float16"], ["float16", "on cpu"]),
        (["profile", "resnet20", "--latency", "--dtype", "int8"], ["int8", "bfloat16"]),
        (["models", "--family", "vgg"], ["--family 'vgg'", "torchvision"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err
    assert "Traceback" not in err


def test_cuda_without_a_gpu_is_bad_input(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the GPU case is covered by test_profiling's cuda:99
    code, out, err = run(capsys, "profile", "resnet20", "--latency", "--device", "cuda")
    assert code == 2 and out == "" and "no CUDA GPU" in err and len(err.strip().splitlines()) == 1


def test_bad_json_file(capsys, tmp_path):
    path = tmp_path / "net.json"
    path.write_text("{not json")
    code, _, err = run(capsys, "profile", str(path))
    assert code == 2 and "does not parse" in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback_and_keeps_the_exit_code(capsys):
    for argv in (["--debug", "profile", "resnet51"], ["profile", "resnet51", "--debug"]):  # before or after
        code, _, err = run(capsys, *argv)
        assert code == 2 and "Traceback" in err and "UnknownPresetError" in err
        assert err.strip().splitlines()[-1].startswith("resnet-bench profile: error: unknown model 'resnet51'")
    code, _, err = run(capsys, "profile", "resnet51")  # without it: one line
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_nothing_is_created_before_the_input_is_checked(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "sweep", "--device", "tpu", "--out", "out")
    assert code == 2 and "device='tpu'" in err and not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("")
    code, _, err = run(capsys, "sweep", "--out", "file/x", "--device", "cpu")  # checked before any training
    assert code == 2 and "'file/x/quickstart' cannot be written" in err and len(err.strip().splitlines()) == 1
    # A bad storage URL, a missing image folder, a checkpoint of another program: refused, nothing left behind.
    code, _, err = run(capsys, "sweep", "--storage", "nosuch://x", "--out", "out", "--device", "cpu")
    assert code == 2 and "nosuch" in err and not (tmp_path / "out").exists()
    study = (tmp_path / "img.toml")
    study.write_text('name = "img"\ndataset = "imagefolder:nowhere"\n[[objectives]]\nmetric = "val_accuracy"\n'
                     '[space]\nstages = 2\nblocks = 1\nblock = "basic"\n')
    code, _, err = run(capsys, "sweep", str(study), "--out", "out", "--device", "cpu", "--n-trials", "1")
    assert code == 2 and "is not an image folder" in err and not (tmp_path / "out").exists()
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "responses", "other.pt", "--out", "out", "--device", "cpu")
    assert code == 2 and "is not a resnet-bench checkpoint" in err and not (tmp_path / "out").exists()


def test_a_damaged_sqlite_file_is_named_in_one_line_and_left_untouched(capsys, tmp_path):
    from resnet_bench.search.config import load_study_file
    from resnet_bench.search.storage import sqlite_url
    from resnet_bench.search.study import open_study

    folder = tmp_path / "quickstart"
    folder.mkdir()
    (folder / "study.db").write_bytes(bytes(range(256)) * 80)  # not a database at all
    # A real study whose third page was overwritten mid-file.
    overwritten = tmp_path / "overwritten.db"
    open_study(load_study_file(None), sqlite_url(overwritten), "quickstart")
    data = bytearray(overwritten.read_bytes())
    data[8192:12288] = b"\xff" * 4096
    overwritten.write_bytes(bytes(data))
    for argv, path in ((["report", "--out", str(tmp_path)], folder / "study.db"),
                       (["report", "--storage", sqlite_url(overwritten), "--out", str(tmp_path)], overwritten),
                       (["sweep", "--storage", sqlite_url(overwritten), "--out", str(tmp_path)], overwritten)):
        before = path.read_bytes()
        code, _, err = run(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"the SQLite file {path.resolve()} is damaged" in err and "left untouched" in err
        assert path.read_bytes() == before


def test_python_dash_m_and_version():
    done = subprocess.run([sys.executable, "-m", "resnet_bench", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("resnet-bench ")


# -- train and evaluate ------------------------------------------------------------------------------------

TINY_SPEC = "block=basic,layers=1-1,stem=cifar,stem_width=8"


def test_train_then_evaluate_a_checkpoint(capsys, tmp_path):
    path = tmp_path / "tiny.pt"
    code, out, err = run(capsys, "train", TINY_SPEC, "--epochs", "1", "--batch-size", "256", "--device", "cpu",
                         "--val-size", "500", "--save", str(path), "--format", "json")
    assert code == 0, err
    row = json.loads(out)[0]
    assert row["dataset"] == "fashion-mnist-mini" and "in_channels=1" in row["spec"] and "num_classes=10" in row["spec"]
    assert row["epochs"] == 1 and len(row["history"]) == 1 and row["recipe"]["batch_size"] == 256
    assert 0 < row["val_accuracy"] <= 1 and row["torch_version"] and row["device"] == "cpu"
    code, out, err = run(capsys, "evaluate", str(path), "--device", "cpu", "--format", "json")
    again = json.loads(out)[0]
    assert code == 0 and again["val_accuracy"] == row["val_accuracy"] and again["test_accuracy"] == row["test_accuracy"]


def test_train_table_and_csv(capsys):
    code, out, _ = run(capsys, "train", TINY_SPEC, "--epochs", "2", "--batch-size", "512", "--device", "cpu",
                       "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["epoch"] for r in rows] == ["1", "2"]
    code, out, _ = run(capsys, "train", TINY_SPEC, "--epochs", "1", "--batch-size", "512", "--device", "cpu")
    assert code == 0 and "validation accuracy" in out and "test accuracy" in out and "never used" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "resnet20", "--dataset", "mnist"], ["dataset='mnist'", "fashion-mnist-mini", "imagefolder:PATH"]),
        (["train", "resnet20", "--epochs", "0"], ["--epochs=0"]),
        (["train", "resnet20", "--batch-size", "0"], ["--batch-size=0"]),
        (["train", "resnet20", "--lr", "-0.1"], ["--lr '-0.1'", "finite number > 0"]),
        (["train", "resnet20", "--recipe", "slow"], ["recipe='slow'", "fast"]),
        (["train", "resnet20", "--device", "tpu"], ["device='tpu'"]),
        (["train", "resnet51"], ["unknown model 'resnet51'"]),
        (["evaluate", "missing.pt"], ["does not exist"]),
        (["evaluate", "."], ["checkpoint '.' is a folder", "trial-N.pt"]),
        (["train", "resnet20", "--lr", "inf"], ["--lr 'inf'", "finite number > 0"]),
        (["train", "resnet20", "--lr", "nan"], ["--lr 'nan'", "finite number > 0"]),
        (["train", "resnet20", "--save", "."], ["--save '.' is a folder"]),
        (["train", "resnet20", "--save", "/proc/no/model.pt"], ["cannot be written", "--save"]),
        (["sweep", "--timeout", "nan"], ["--timeout 'nan'", "finite number > 0"]),
        (["sweep", "--timeout", "-5"], ["--timeout '-5'"]),
    ],
)
def test_train_bad_input(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err


def test_train_on_a_folder_that_is_not_an_imagefolder(capsys, tmp_path):
    code, _, err = run(capsys, "train", "resnet20", "--dataset", f"imagefolder:{tmp_path}")
    assert code == 2 and "is not an image folder" in err


def test_sweep_help_lists_every_shipped_study(capsys):
    from resnet_bench.search.config import SHIPPED_STUDIES

    code, out, _ = run(capsys, "sweep", "--help")
    listed = " ".join(out.split()).split("a shipped study: ")[1].split(" options:")[0]
    assert code == 0 and listed.replace(" (default)", "").split(", ") == list(SHIPPED_STUDIES)


def test_a_study_file_that_is_not_utf8_is_one_line(capsys, tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    code, _, err = run(capsys, "sweep", str(path), "--dry-run")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is not UTF-8 text (byte 11)" in err


def test_evaluate_a_file_that_is_not_ours(capsys, tmp_path):
    import torch

    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    code, _, err = run(capsys, "evaluate", str(path))
    assert code == 2 and "is not a resnet-bench checkpoint" in err


def test_the_sweeps_progress_restarts_each_trials_clock_and_moves_with_batches():
    import io
    import time
    from types import SimpleNamespace

    import torch
    from rich.console import Console

    from resnet_bench.cli.output import SweepProgress

    progress = SweepProgress(3)
    progress.console = Console(file=io.StringIO(), force_terminal=True, width=120)
    progress.progress.disable = False  # as on a terminal
    epochs = progress.progress.tasks[progress.epochs[0]]
    progress.trial_start(0, "block=basic,layers=1-1")
    progress.batch(1, 5, 10, torch.tensor(1.25))
    assert (epochs.completed == 0.5 and "block=basic,layers=1-1" in epochs.fields["note"]
            and "1.250" in epochs.fields["note"])
    progress.epoch(0, SimpleNamespace(epoch=1, val_accuracy=0.5), 2)
    assert epochs.completed == 1 and epochs.total == 2 and "block=basic" in epochs.fields["note"]
    started = epochs.start_time
    time.sleep(0.01)
    progress.trial_start(1, "block=bottleneck,layers=2-2")  # a new trial: its own clock, from zero
    assert epochs.completed == 0 and epochs.description == "trial 1" and (epochs.start_time or 1e18) > started


def test_the_parent_of_workers_draws_each_workers_trial_on_its_own_bar_and_counts_all_their_trials():
    from types import SimpleNamespace

    from resnet_bench.cli.output import SweepProgress

    progress = SweepProgress(4, workers=2)
    progress.progress.disable = False  # as on a terminal
    first, second = (progress.progress.tasks[progress.epochs[w]] for w in (1, 2))
    progress.trial_start(3, "block=basic,layers=1-1", worker=1)
    progress.trial_start(4, "block=bottleneck,layers=2-2", worker=2)
    progress.batch(1, 5, 10, 1.25, worker=1)  # a worker sends its loss as a number
    progress.batch(2, 2, 10, 0.5, worker=2)  # at once after worker 1's: each worker's own refresh clock
    assert (first.description, first.completed) == ("worker 1: trial 3", 0.5) and "loss 1.250" in first.fields["note"]
    assert (second.description, second.completed) == ("worker 2: trial 4", 1.2) and "bottleneck" in second.fields[
        "note"]
    trial = SimpleNamespace(number=3, user_attrs={"status": "trained", "val_accuracy": 0.5, "gflops": 0.001,
                                                  "params": 10, "spec": "block=basic,layers=1-1"})
    progress.trial_end(trial, worker=1)
    progress.trial_end(SimpleNamespace(number=4, user_attrs={**trial.user_attrs, "val_accuracy": 0.7}), worker=2)
    trials = progress.progress.tasks[progress.trials]
    assert trials.completed == 2 and trials.fields["note"] == "best val 70.00%"


def test_the_sweeps_progress_says_the_time_left_of_its_budget_on_each_trials_line():
    """Off a terminal a sweep shows no bars, only trial lines (a worker's named): the budget's time left is on each."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from resnet_bench.cli.output import SweepProgress

    now = [1000.0]
    progress = SweepProgress(200, workers=2, timeout_minutes=65, clock=lambda: now[0])
    progress.console = Console(file=io.StringIO(), width=100)
    trial = SimpleNamespace(number=7, user_attrs={"status": "trained", "val_accuracy": 0.8788, "gflops": 0.0016,
                                                  "params": 4962,
                                                  "spec": "block=preact_basic,in_channels=1,num_classes=10",
                                                  "trial_seconds": 412})
    now[0] += 22 * 60  # 22 minutes into the budget of 65
    progress.trial_end(trial, worker=1)
    now[0] += 50 * 60
    progress.trial_end(trial, worker=2)
    lines = progress.console.file.getvalue().splitlines()
    assert lines[0] == ("worker 1: trial 7 trained in 412 s: block=preact_basic val 87.88%, 0.0016 GFLOPs, 4,962 "
                        "params; 43 min of the 1 h 05 min budget left")
    assert lines[1].startswith("worker 2: trial 7 trained")
    assert lines[1].endswith("; the 1 h 05 min budget is spent: no new trial starts")
    untimed = SweepProgress(2)  # no budget on the wall clock: nothing said of one
    untimed.console = Console(file=io.StringIO(), width=100)
    untimed.trial_end(trial)
    assert untimed.console.file.getvalue().strip().endswith("4,962 params")
