"""The search space: its size counted by hand, the networks it samples, a baseline's place in it, and its whole grid."""

from __future__ import annotations

import math

import optuna
import pytest

import resnet_bench as rb
from resnet_bench.search.config import (
    load_study_file,
    parse_study,
)
from resnet_bench.search.space import architecture_count, grid, recipe_count, space_size

from .helpers import REPO, minimal_study
from .test_replay import FOUR


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


def test_baseline_params_hold_the_modern_fields():
    from resnet_bench.search.space import baseline_params

    config = parse_study({**minimal_study(), "space": {"shortcut": ["A", "B"], "se_ratio": [0.0, 0.0625],
                                                  "downsample": ["conv", "avgpool"], "pad": ["after", "both"]}})
    assert (baseline_params(rb.presets.get("resnet20_se"), config).items()
            >= {"se_ratio": 0.0625, "pad": "after"}.items())
    held = baseline_params(rb.presets.get("resnet20_d"), config)
    assert held["downsample"] == "avgpool" and held["se_ratio"] == 0.0 and "pad" not in held


def test_grid_holds_every_network_once():
    bench = load_study_file(REPO / "studies" / "bench_space.toml")
    points = grid(bench)
    assert len(points) == architecture_count(bench) == 216
    assert len({tuple(sorted(p.items())) for p in points}) == 216
    # 2 stages: blocks_1 and blocks_2 only; 3 stages: blocks_3 too.
    assert {len([k for k in p if k.startswith("blocks_")]) for p in points} == {2, 3}


def test_a_continuous_range_has_no_grid():
    import tomllib

    text = FOUR.replace('block = "basic"', 'block = "basic"\ndropout = { low = 0.0, high = 0.5 }')
    with pytest.raises(ValueError, match="continuous"):
        grid(parse_study(tomllib.loads(text)))
