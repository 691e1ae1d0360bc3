"""The replay of a search on recorded curves: decisions, seconds and hypervolume of a hand-made table checked by
hand, and the space's grid that the recording enqueues."""

from __future__ import annotations

import math

import pytest

from resnet_bench.search.config import parse_study
from resnet_bench.search.replay import MAX_DUPLICATES_IN_A_ROW, Curve, ReplaySettings, replay, train_everything
from resnet_bench.spec import ResNetSpec


FOUR = """
name = "four"
dataset = "fashion-mnist-mini"
[[objectives]]
metric = "val_accuracy"
[[objectives]]
metric = "gflops"
direction = "minimize"
[space]
stages = 2
blocks = { low = 1, high = 2 }
block = "basic"
shortcut = "B"
[recipe]
name = "fast"
epochs = 3
[budget]
early_stopping = "mo-asha"
min_epochs = 1
reduction_factor = 3
[report]
reference_point = { val_accuracy = 0.0, gflops = 4.0 }
"""


def config():
    import tomllib

    return parse_study(tomllib.loads(FOUR))


def curve(blocks, vals, gflops, probe):
    spec = f"block=basic,layers={blocks[0]}-{blocks[1]},stem=cifar,stem_width=16,in_channels=1,num_classes=10"
    history = tuple({"epoch": e + 1, "val_accuracy": v, "train_loss": 1.0 / (e + 1), "seconds": 1.0,
                     "probe_val_accuracy": probe if e == 0 else None, "probe_seconds": 0.5 if e == 0 else 0.0}
                    for e, v in enumerate(vals))
    return Curve(spec=ResNetSpec.parse(spec).format(), params={"blocks_1": blocks[0], "blocks_2": blocks[1]},
                 metrics={"gflops": gflops, "params": 1}, history=history)


# A, B, C, D in that order; B dominates A at the first rung; C starts worst but ends best; D is worst throughout.
CURVES = [
    curve((1, 1), [0.5, 0.6, 0.7], 1.0, 0.55),
    curve((1, 2), [0.6, 0.7, 0.8], 1.0, 0.65),
    curve((2, 1), [0.4, 0.5, 0.9], 2.0, 0.95),
    curve((2, 2), [0.3, 0.35, 0.4], 3.0, 0.3),
]


def test_raw_accuracy_at_the_rung_stops_the_late_bloomer():
    """One worker, eta 3: A and B go on (fewer than 3 at the rung); C is third of three and only the top one (B)
    goes on; D is fourth of four, top one again. Hypervolume from (0, 4): A alone 0.7 * 3; then B, 0.8 * 3."""
    result = replay(CURVES, config(), ReplaySettings(sampler="random", workers=1, order=(0, 1, 2, 3), max_trials=4))
    assert result.decisions == [(0, 1, True), (1, 1, True), (2, 1, False), (3, 1, False)]
    assert (result.full, result.stopped, result.seconds) == (2, 2, 8.0)
    assert [(p.seconds, round(p.hypervolume, 9), p.full) for p in result.anytime] == [(3.0, 2.1, 1), (6.0, 2.4, 2)]


def test_the_probe_keeps_it_and_its_seconds_count():
    """With the probe, C reads 0.95 at the rung: on the front and first by accuracy, it goes on and ends at
    (0.9, 2); D is stopped. Each rung epoch costs 0.5 s more: 3.5 + 3.5 + 3.5 + 1.5. Hypervolume: B's 0.8 * 3
    plus C's (0.9 - 0.8) * (4 - 2)."""
    settings = ReplaySettings(sampler="random", workers=1, order=(0, 1, 2, 3), max_trials=4, rung_estimate="probe")
    result = replay(CURVES, config(), settings)
    assert result.decisions == [(0, 1, True), (1, 1, True), (2, 1, True), (3, 1, False)]
    assert (result.full, result.stopped, result.seconds) == (3, 1, 12.0)
    assert result.anytime[-1].hypervolume == pytest.approx(2.4 + 0.1 * 2)
    assert result.seconds_to(2.4) == 7.0 and math.isinf(result.seconds_to(3.0))


def test_two_workers_and_a_proposal_answered_from_the_study():
    """Two workers without early stopping: A and B run side by side; when A ends, both have trained 2 epochs and A
    its third (5 s spent), then B (6 s); C and D likewise (11 s, 12 s). Then A, enqueued again, and every later
    proposal are answered from the study, no seconds spent, until each worker has had MAX_DUPLICATES_IN_A_ROW."""
    settings = ReplaySettings(sampler="random", workers=2, order=(0, 1, 2, 3, 0), early_stopping=False)
    result = replay(CURVES, config(), settings)
    assert [p.seconds for p in result.anytime] == [5.0, 6.0, 11.0, 12.0]
    assert (result.full, result.stopped, result.duplicates, result.seconds) == (4, 0, 2 * MAX_DUPLICATES_IN_A_ROW,
                                                                                 12.0)
    everything = train_everything(CURVES, config())
    assert everything == (12.0, pytest.approx(result.anytime[-1].hypervolume))


def test_the_real_sampler_runs_until_the_space_is_exhausted():
    """TPE proposes until every network is known; a network proposed while its twin still trains is trained again,
    as in the sweep (which answers only from finished trials)."""
    result = replay(CURVES, config(), ReplaySettings(sampler="tpe", workers=2, seed=3))
    assert result.full + result.stopped >= 4 and result.duplicates >= 2 * MAX_DUPLICATES_IN_A_ROW


def test_a_stopped_network_proposed_again_is_revived_when_it_now_ranks_in_its_rung():
    """eta+1, one worker, A B C D E F then C again. C arrives third of three: eta+1 keeps two (B, then A, which B
    dominates) and C (0.4 at 2 GFLOPs) stops; D, E, F stop too. Proposed again with six at the rung, eta+1 keeps
    three: B, A, C, so C trains on from epoch 2 (2 s more, not 3) and ends at (0.9, 2): hypervolume 0.8 * 3 + 0.1 * 2.
    Without revival it is answered from the study."""
    import tomllib

    wider = parse_study(tomllib.loads(FOUR.replace("high = 2", "high = 3")))
    curves = [*CURVES, curve((1, 3), [0.2, 0.2, 0.2], 3.5, 0.2), curve((3, 1), [0.25, 0.25, 0.25], 3.5, 0.25)]
    settings = ReplaySettings(sampler="random", workers=1, order=(0, 1, 2, 3, 4, 5, 2), max_trials=7,
                              promotion="eta+1", revive=True)
    result = replay(curves, wider, settings)
    assert [d[:2] for d in result.decisions if not d[2]] == [(2, 1), (3, 1), (4, 1), (5, 1)]
    assert (result.revived, result.full, result.seconds, result.epochs[6]) == (1, 3, 12.0, 3)
    assert [round(p.hypervolume, 9) for p in result.anytime] == [2.1, 2.4, 2.6]
    plain = replay(curves, wider, ReplaySettings(**{**settings.__dict__, "revive": False, "skip_missing": True}))
    assert plain.revived == 0 and plain.duplicates >= 1 and 2.6 not in [round(p.hypervolume, 9) for p in plain.anytime]


def test_brackets_judge_a_trial_of_the_second_bracket_never_when_its_first_rung_is_the_last_epoch():
    """Two brackets, eta 3, 3 epochs: bracket 1's first rung would be epoch 3, the last, so its trials train to the
    end unjudged. With seed 3 the draws (early_stopping.draw_bracket) put trial 2, C, the late bloomer, in bracket 1
    and the others in bracket 0: A and B go on (fewer than 3 at the rung), D is third of three at the rung of bracket
    0 and stops. C is trained whole and found: 3 + 3 + 3 + 1 s; hypervolume 0.8 * 3 + 0.1 * 2."""
    from resnet_bench.search.early_stopping import bracket_weights, draw_bracket

    assert [draw_bracket(3, n, bracket_weights(2, 3)) for n in range(4)] == [0, 0, 1, 0]
    settings = ReplaySettings(sampler="random", workers=1, order=(0, 1, 2, 3), max_trials=4, brackets=2, seed=3)
    result = replay(CURVES, config(), settings)
    assert result.decisions == [(0, 1, True), (1, 1, True), (3, 1, False)]
    assert (result.full, result.stopped, result.seconds) == (3, 1, 10.0)
    assert result.anytime[-1].hypervolume == pytest.approx(2.4 + 0.1 * 2)
