"""Rung estimates: the EMA of the weights, the cooldown probe and the loss sum on cases checked by hand, and the
probe and the EMA leaving the training exactly where a run without them ends."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import resnet_bench as rb
from resnet_bench.estimates import RUNG_ESTIMATES, EstimateError, check_estimate, estimate_value, trainer_needs
from resnet_bench.recipe import Recipe
from resnet_bench.spec import ResNetSpec
from resnet_bench.train import WeightAverage, spec_for_data, train

from .helpers import small_splits

TINY = ResNetSpec(layers=(1, 1), stem="cifar", stem_width=8)
QUICK = Recipe(epochs=2, batch_size=64, lr=0.2, warmup_epochs=0.5, schedule="linear")


@pytest.fixture(scope="module")
def small():
    """Real Fashion-MNIST images: 512 to train on, 300 to validate."""
    return small_splits(train=512, val=300)


def tiny(data):
    torch.manual_seed(0)
    return rb.build_model(spec_for_data(TINY, data))


def test_ema_of_known_weights_by_hand():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = WeightAverage(model, half_life_steps=1.0)  # decay 0.5 per step, but (1 + n) / (10 + n) over the first
    assert ema.decay == 0.5
    with torch.no_grad():
        model.weight.fill_(10.0)
    ema.update(model)  # n = 1: decay min(0.5, 2/11) = 2/11: 0 * 2/11 + 10 * 9/11
    assert ema.model.weight.item() == pytest.approx(10 * 9 / 11)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema.update(model)  # n = 2: decay min(0.5, 3/12) = 0.25
    assert ema.model.weight.item() == pytest.approx(10 * 9 / 11 * 0.25)
    for _ in range(20):  # decay capped at 0.5 from n = 8 on
        ema.update(model)
    assert ema.decay == 0.5 and ema.updates == 22


def test_ema_copies_integer_buffers():
    model = nn.BatchNorm2d(2)
    ema = WeightAverage(model, half_life_steps=4)
    model.num_batches_tracked.fill_(7)
    ema.update(model)
    assert ema.model.num_batches_tracked.item() == 7


def test_loss_sum_and_the_other_estimates_by_hand():
    history = [
        {"epoch": 1, "train_loss": 1.5, "val_accuracy": 0.5, "ema_val_accuracy": 0.6, "probe_val_accuracy": 0.7},
        {"epoch": 2, "train_loss": 1.0, "val_accuracy": 0.55, "ema_val_accuracy": 0.65, "probe_val_accuracy": 0.72},
    ]
    assert estimate_value("loss_sum", history[:1]) == -1.5
    assert estimate_value("loss_sum", history) == -2.5  # Ru et al. 2021: the sum of the epochs' training losses
    assert estimate_value("val_accuracy", history) == 0.55
    assert estimate_value("ema", history) == 0.65
    assert estimate_value("probe", history) == 0.72
    assert trainer_needs("ema") == ("ema",) and trainer_needs("loss_sum") == () and trainer_needs("probe") == (
        "probe",)


def test_an_estimate_the_epoch_did_not_measure_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="ema_val_accuracy"):
        estimate_value("ema", [{"epoch": 1, "train_loss": 1.0, "val_accuracy": 0.5, "ema_val_accuracy": None}])


def test_unknown_estimate_names_the_accepted_values():
    with pytest.raises(EstimateError, match="rung_estimate='median'.*" + ", ".join(RUNG_ESTIMATES)):
        check_estimate("median")


def test_probe_and_ema_leave_the_training_exactly_where_it_was(small):
    """The same weights, optimizer state and metrics, bit for bit, as a run that measures no estimate."""
    plain_model, probed_model = tiny(small), tiny(small)
    plain = train(plain_model, small, QUICK, "cpu")
    probed = train(probed_model, small, QUICK, "cpu", estimates=("ema", "probe"))
    for a, b in zip(plain_model.state_dict().values(), probed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [m.val_accuracy for m in plain.history] == [m.val_accuracy for m in probed.history]
    assert [m.train_loss for m in plain.history] == [m.train_loss for m in probed.history]
    assert plain.test_accuracy == probed.test_accuracy
    for m in probed.history:
        assert 0 <= m.ema_val_accuracy <= 1 and 0 <= m.probe_val_accuracy <= 1 and m.val_loss > 0
        assert m.probe_seconds > 0 and m.ema_seconds > 0
    assert all(m.probe_val_accuracy is None and m.val_loss is None for m in plain.history)


def test_estimates_only_at_the_epochs_asked_for(small):
    result = train(tiny(small), small, QUICK, "cpu", estimates=("probe",), estimate_epochs={1})
    assert result.history[0].probe_val_accuracy is not None and result.history[1].probe_val_accuracy is None


@pytest.mark.slow
def test_the_probe_cools_down_a_run_at_its_peak_learning_rate():
    """A probe in a constant schedule at a high rate reads above the run's own accuracy: the point of it. A run at
    a constant high rate is noisy from epoch to epoch and from seed to seed, and its numbers move with the CPU, its
    threads and precision, so the test reads both epochs of three seeds together. (Measured on this data, 4,096
    images, 2 epochs at lr 0.4, seeds 0 to 4, on 1 and 2 threads, in fp32 and bf16, on a 2-core AMD EPYC: the
    probe's mean above the run's in all 20 runs, by 0.03 to 0.36 in one run, by 0.13 to 0.30 in the mean of
    seeds 0 to 2; one run alone fell under 0.05 in 3 of the 20, and did on this machine where an Intel Xeon passed.)"""
    data = small_splits(train=4096, val=500)
    run = probe = 0.0
    for seed in (0, 1, 2):
        recipe = Recipe(epochs=2, batch_size=64, lr=0.4, schedule="constant", warmup_epochs=0.5, seed=seed)
        result = train(tiny(data), data, recipe, "cpu", estimates=("probe",))
        assert max(m.probe_val_accuracy for m in result.history) > 0.4  # learning, not at chance (0.1)
        run += sum(m.val_accuracy for m in result.history) / 6
        probe += sum(m.probe_val_accuracy for m in result.history) / 6
    assert probe > run + 0.05


def test_the_ema_resumes_from_a_saved_state(small, tmp_path):
    whole = train(tiny(small), small, QUICK, "cpu", estimates=("ema",))
    state = tmp_path / "run.state"
    first = dataclasses.replace(QUICK)

    def stop_after_one(epoch, metrics):
        return epoch == 1

    train(tiny(small), small, first, "cpu", estimates=("ema",), state_path=state, callback=stop_after_one)
    resumed = train(tiny(small), small, QUICK, "cpu", estimates=("ema",), state_path=state)
    assert resumed.resumed_from_epoch == 1
    assert resumed.history[-1].ema_val_accuracy == whole.history[-1].ema_val_accuracy


def test_unknown_trainer_estimate(small):
    with pytest.raises(ValueError, match="ema, probe"):
        train(tiny(small), small, QUICK, "cpu", estimates=("swa",))


def _study(histories, rungs=(1, 3), estimate="val_accuracy"):
    import pandas as pd

    from resnet_bench.search.records import StudyTrials

    return StudyTrials(name="s", storage="", objectives=(("val_accuracy", "maximize"), ("gflops", "minimize")),
                       dataset="", constraints={}, reference_point={}, trials=pd.DataFrame(),
                       histories=dict(enumerate(histories)), rungs=rungs, rung_estimate=estimate)


def test_the_reports_rung_tau_by_hand():
    """Eight trials trained to the end: at epoch 1 the order of their accuracy is the final order but for one
    swapped pair (27 of 28 pairs concordant: tau = 26/28); at epoch 3 it is the final order (tau 1)."""
    from resnet_bench.report.analysis import rung_taus

    finals = [0.80 + 0.01 * i for i in range(8)]
    first = list(finals)
    first[0], first[1] = first[1], first[0]
    histories = [[{"epoch": e, "train_loss": 1.0, "val_accuracy": first[i] if e == 1 else finals[i]}
                  for e in range(1, 7)] for i in range(8)]
    taus = rung_taus(_study(histories))
    assert [(t.epoch, t.trials) for t in taus] == [(1, 8), (3, 8)]
    assert taus[0].tau == pytest.approx(26 / 28) and taus[1].tau == pytest.approx(1.0)
    few = rung_taus(_study(histories[:7]))
    assert [t.tau for t in few] == [None, None] and few[0].trials == 7


def test_the_reports_rung_tau_skips_trials_whose_rung_did_not_measure_the_estimate():
    from resnet_bench.report.analysis import rung_taus

    histories = [[{"epoch": e, "train_loss": 1.0, "val_accuracy": 0.5, "probe_val_accuracy": None}
                  for e in range(1, 7)] for _ in range(9)]
    assert rung_taus(_study(histories, estimate="probe"))[0].trials == 0
