"""The study file: the shipped files parse and match their packaged copies, every key is documented, and a bad
file is refused with one line naming the key (exit 2)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from resnet_bench.search.config import (
    CONSTRAINTS,
    RECIPE_KEYS,
    SHIPPED_STUDIES,
    SPACE_KEYS,
    StudyFileError,
    load_study_file,
    parse_study,
)
from resnet_bench.search.space import architecture_count, grid

from .helpers import REPO, TINY_STUDY, minimal_study, run, toml_text, write


@pytest.mark.parametrize("name", SHIPPED_STUDIES)
def test_shipped_studies_parse_and_the_repository_copies_are_the_packaged_ones(name):
    config = load_study_file(name)
    assert config.name == name and config.objectives[0].metric == "val_accuracy"
    packaged = resources.files("resnet_bench").joinpath(f"studies/{name}.toml").read_text()
    assert (REPO / "studies" / f"{name}.toml").read_text() == packaged
    assert load_study_file(REPO / "studies" / f"{name}.toml") == config


def test_every_key_is_documented_by_an_example_in_the_quickstart():

    text = load_study_file("quickstart").source
    for key in (*SPACE_KEYS, *RECIPE_KEYS, *CONSTRAINTS, "n_trials", "timeout_minutes", "n_startup_trials",
                "population_size", "baselines", "val_size", "image_size", "seed", "dataset", "description"):
        # An example line, set or commented out ("key = ..." or "# key = ..."), not the word inside a comment.
        assert re.search(rf"^(# )?{key} = \S", text, re.M), key


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
