"""The paper's experiments: `reproduce degradation` (a reduced run, its files, its resumption) and `responses` (the
statistic against forward hooks by hand, the figure, bad input)."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pandas as pd
import pytest
import torch

import resnet_bench as rb
from resnet_bench.checkpoint import load_checkpoint, save_checkpoint
from resnet_bench.data import DeviceBatches
from resnet_bench.experiments.degradation import (
    effect,
    network,
    parse_depths,
    study_name,
)
from resnet_bench.experiments.responses import layer_responses, network_label, response_layers
from resnet_bench.search.records import TrialRecord
from resnet_bench.train import spec_for_data, train

from .helpers import run, small_splits, write_cifar

MINI = "fashion-mnist-mini"


def test_depths_are_cifar_net_depths():
    assert parse_depths("56, 20") == (20, 56)
    for bad in ("21", "20,20", "2", "x", "20,,32", "1208"):
        with pytest.raises(rb.errors.BadInputError, match="6n\\+2"):
            parse_depths(bad)
    assert network("plain", 56) == "plain56" and network("residual", 14) == "resnet20,layers=2-2-2"
    assert rb.presets.resolve(network("plain", 14)).layers == (2, 2, 2)
    assert rb.presets.resolve(network("plain", 14)).shortcut == "none"
    # The paper's initialisation: no zero-initialised last BN.
    assert not rb.presets.resolve(network("residual", 14)).zero_init_residual


def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path):
    for argv, words in [
        (["reproduce", "degradation", "--depths", "20,21"], "--depths 20,21: '21' is not accepted"),
        (["reproduce", "degradation", "--epochs", "0"], "--epochs"),
        (["reproduce", "degradation", "--dataset", "mnist"], "dataset='mnist' is not accepted"),
        (["responses", str(tmp_path / "missing.pt")], "does not exist"),
    ]:
        code, out, err = run(capsys, *argv, "--out", str(tmp_path))
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert out == ""


@pytest.mark.slow
def test_a_reduced_degradation_run_writes_the_figure_and_the_curves_and_resumes(capsys, tmp_path):
    argv = ["reproduce", "degradation", "--dataset", MINI, "--depths", "8,14", "--epochs", "1", "--out",
            str(tmp_path), "--device", "cpu", "--format", "json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    final = json.loads(out)
    assert [(r["depth"], r["kind"]) for r in final] == [(8, "plain"), (8, "residual"), (14, "plain"), (14, "residual")]
    folder = tmp_path / "degradation" / study_name(MINI, 1, 0)
    assert (folder / "degradation.png").stat().st_size > 10_000
    curves = pd.read_csv(folder / "curves.csv")
    assert len(curves) == 4 and set(curves["network"]) == {"plain-8", "ResNet-8", "plain-14", "ResNet-14"}
    assert curves["train_error"].between(0, 1).all() and curves["test_error"].between(0, 1).all()
    # The last epoch's test error is the run's test accuracy, as stored: one measurement.
    for row in final:
        assert curves[(curves["depth"] == row["depth"]) & (curves["kind"] == row["kind"])]["test_error"].iloc[-1] \
            == pytest.approx(row["test_error"])
        assert load_checkpoint(row["checkpoint"]).spec.shortcut == ("none" if row["kind"] == "plain" else "A")
    summary = (folder / "summary.md").read_text()
    assert "| 8 |" in summary and "| 14 |" in summary and "the paper" in summary
    # Ordinary trials of a study, each with its per-epoch history.
    storage = f"sqlite:///{folder / 'study.db'}"
    trials = optuna.load_study(study_name=study_name(MINI, 1, 0), storage=storage).get_trials()
    records = [TrialRecord.from_attrs(t.user_attrs) for t in trials]
    assert sorted(r.baseline for r in records) == ["plain20,layers=1-1-1", "plain20,layers=2-2-2",
                                                   "resnet20,layers=1-1-1", "resnet20,layers=2-2-2"]
    assert all(r.status == "trained" and len(r.history) == 1 and r.history[0]["test_error"] is not None
               for r in records)

    # Again, with one more depth: only its two networks train; the figure and tables hold all three depths.
    code, out, err = run(capsys, *argv[:5], "8,14,20", *argv[6:])
    assert code == 0, err
    assert "2 of 6 networks to train (plain20, resnet20)" in err
    assert len(optuna.load_study(study_name=study_name(MINI, 1, 0), storage=storage).get_trials()) == 6
    assert len(pd.read_csv(folder / "curves.csv")) == 6
    code, out, err = run(capsys, *argv[:5], "8,14,20", *argv[6:-2])
    assert code == 0 and "0 of 6 networks to train" in err
    assert "degradation on fashion-mnist-mini" in out and "plain: plain-20 " in out and "ResNets: ResNet-20 " in out
    assert "resnet-bench responses " in out
    # The report command it prints reads the study and writes its report beside the figure.
    command = next(line.split() for line in out.splitlines() if "resnet-bench report" in line)
    code, _, err = run(capsys, *command[1:], "--format", "json")
    assert code == 0, err
    assert (folder / "report.md").is_file() and (folder / "front.csv").is_file()


def test_a_run_another_command_trains_is_left_to_it_and_a_failed_one_is_queued_again(tmp_path):
    import warnings

    from resnet_bench.experiments.degradation import DegradationRun

    def opened():
        return DegradationRun(dataset=MINI, depths=(8,), epochs=1, out=tmp_path, device="cpu")

    first = opened()
    both = ["plain20,layers=1-1-1", "resnet20,layers=1-1-1"]
    assert sorted(first.queued) == sorted(first.todo) == both
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's note that heartbeats are meant for optimize()
        taken = first.sweep.study.ask()  # another command took one queued run and trains it
    again = opened()
    name = taken.user_attrs["baseline"]
    assert name in again.todo and again.queued == [b for b in both if b != name]  # not trained twice
    first.sweep.study.tell(taken, state=optuna.trial.TrialState.FAIL)  # it failed: the next command queues it again
    assert sorted(opened().queued) == both


def test_the_verdict_compares_the_deepest_with_the_shallowest():
    final = pd.DataFrame([
        {"depth": 20, "kind": "plain", "network": "plain-20", "train_error": 0.10},
        {"depth": 56, "kind": "plain", "network": "plain-56", "train_error": 0.15},
        {"depth": 20, "kind": "residual", "network": "ResNet-20", "train_error": 0.10},
        {"depth": 56, "kind": "residual", "network": "ResNet-56", "train_error": 0.12},
    ])
    verdict = effect(final)
    assert (verdict["plain"].startswith("plain-56 15.00% against plain-20 10.00%")
            and "as in the paper" in verdict["plain"])
    assert "not as in the paper" not in verdict["plain"]  # the deeper plain net trains worse: as the paper says
    assert "not as in the paper" in verdict["residual"]


# -- responses ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    """The mini set's whole training split less 500 images to validate, and its test set."""
    return small_splits(train=None, val=500)


def trained(spec_line: str, data, tmp_path, name: str):
    torch.manual_seed(0)
    spec = spec_for_data(rb.presets.resolve(spec_line), data)
    model = rb.build_model(spec)
    small_train = dataclasses.replace(data, train=data.train.subset(torch.arange(512)))
    result = train(model, small_train, rb.recipe.get_recipe("he2015", epochs=1, batch_size=128), "cpu")
    return model, save_checkpoint(tmp_path / f"{name}.pt", model, spec, result, dataset=MINI, val_size=500,
                                  split_seed=0, image_size=28)


def test_the_response_statistic_is_the_std_of_each_bn_output_computed_by_hand(small, tmp_path):
    model, _ = trained("resnet20,layers=1-1-1", small, tmp_path, "r8")
    model.eval()
    batches = DeviceBatches(small.test, batch_size=300, device=torch.device("cpu"), mean=small.mean, std=small.std,
                            train=False)
    names = [name for name, _ in response_layers(model)]
    assert names == ["bn1", "layer1.0.bn1", "layer1.0.bn2", "layer2.0.bn1", "layer2.0.bn2", "layer3.0.bn1",
                     "layer3.0.bn2"]  # the stem's 3x3 conv, then two per basic block: 1 + 6 = depth - 1
    # By hand: every response of the test set kept (a copy, before the block adds its shortcut in place), then
    # torch.std over all of them, the population's.
    kept = {name: [] for name in names}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: kept[n].append(o.detach().clone()))
               for n in names]
    with torch.no_grad():
        x_all = torch.cat([x for x, _ in batches])
        model(x_all)
    for h in handles:
        h.remove()
    by_hand = {n: torch.cat(v).double().std(unbiased=False).item() for n, v in kept.items()}
    # The stem's response straight from its modules, with no hook at all.
    with torch.no_grad():
        stem = model.bn1(model.conv1(x_all)).double().std(unbiased=False).item()
    measured = dict(layer_responses(model, batches))
    assert measured == pytest.approx(by_hand, rel=1e-9)
    assert measured["bn1"] == pytest.approx(stem, rel=1e-9)
    # Before the in-place addition: the std of bn2's output differs from the block's output's.
    assert measured["layer1.0.bn2"] != pytest.approx(torch.relu(kept["layer1.0.bn2"][0]).double().std().item(),
                                                     rel=1e-3)


def test_bottleneck_and_preact_responses_are_their_3x3_layers():
    spec = rb.ResNetSpec(block="bottleneck", layers=(1, 2), stem="cifar", stem_width=8)
    assert [n for n, _ in response_layers(rb.build_model(spec))] == ["bn1", "layer1.0.bn2", "layer2.0.bn2",
                                                                      "layer2.1.bn2"]
    spec = rb.ResNetSpec(block="preact_basic", layers=(1,), stem="cifar", stem_width=8)
    assert [n for n, _ in response_layers(rb.build_model(spec))] == ["layer1.0.conv1", "layer1.0.conv2"]


@pytest.mark.slow
def test_responses_of_plain_and_residual_checkpoints_on_the_same_axes(capsys, small, tmp_path):
    _, plain = trained("plain20,layers=1-1-1", small, tmp_path, "plain8")
    _, residual = trained("resnet20,layers=1-1-1", small, tmp_path, "resnet8")
    assert network_label(load_checkpoint(plain)) == "plain-8"
    out_dir = tmp_path / "figure"
    code, out, err = run(capsys, "responses", str(plain), str(residual), "--out", str(out_dir), "--device", "cpu",
                         "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["network"] for r in rows] == ["plain-8"] * 7 + ["ResNet-8"] * 7
    assert sorted(r["rank"] for r in rows if r["network"] == "plain-8") == list(range(1, 8))
    assert all(r["std"] > 0 for r in rows)
    assert (out_dir / "responses.png").stat().st_size > 10_000
    assert len(pd.read_csv(out_dir / "responses.csv")) == 14
    code, out, err = run(capsys, "responses", str(plain), "--out", str(out_dir), "--device", "cpu", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "checkpoint,network,layer,name,std,rank"


def test_a_checkpoint_of_another_architecture_is_bad_input(capsys, small, tmp_path):
    spec = spec_for_data(rb.presets.resolve("resnet20,layers=1-1-1"), small)
    model = rb.build_model(spec)
    other = spec_for_data(rb.presets.resolve("resnet20"), small)  # the file names another network than its weights
    result = train(model, dataclasses.replace(small, train=small.train.subset(torch.arange(128))),
                   rb.recipe.get_recipe("he2015", epochs=1, batch_size=128), "cpu")
    path = save_checkpoint(tmp_path / "lying.pt", model, other, result, dataset=MINI, val_size=500, split_seed=0,
                           image_size=28)
    code, out, err = run(capsys, "responses", str(path), "--out", str(tmp_path), "--device", "cpu")
    assert code == 2 and "its weights do not fit the network it names" in err and len(err.strip().splitlines()) == 1
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    code, out, err = run(capsys, "responses", str(text), "--out", str(tmp_path))
    assert code == 2 and "is not a resnet-bench checkpoint" in err and out == ""


def test_a_test_set_of_another_kind_is_bad_input(capsys, small, tmp_path, monkeypatch):
    _, path = trained("resnet20,layers=1-1-1", small, tmp_path, "r8")
    root = tmp_path / "data"
    root.mkdir()
    write_cifar(root, "cifar10", n_train=20, n_test=7, classes=10)
    monkeypatch.setenv("RESNET_BENCH_DATA", str(root))
    code, out, err = run(capsys, "responses", str(path), "--dataset", "cifar10", "--out", str(tmp_path),
                         "--device", "cpu")
    assert code == 2 and "takes 1-channel images" in err and "3-channel" in err and out == "", err
