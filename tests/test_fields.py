"""The field table (fields.py): a row for every field of ResNetSpec, each row's domain what the spec accepts, and the
shipped study files' fingerprints unchanged by reading their [space] from the table."""

from __future__ import annotations

import dataclasses
import re

import pytest

from resnet_bench.fields import (
    BLOCKS,
    CHOICE,
    DEFAULTS,
    FIELDS,
    FLAG,
    FRACTION,
    INT,
    SHORTCUTS,
    SPACE,
    SPEC_FIELDS,
    Field,
)
from resnet_bench.recipe import RECIPE_FIELDS, Recipe, RecipeError
from resnet_bench.search.config import RECIPE_KEYS, SPACE_KEYS, StudyFileError, load_study_file, parse_study
from resnet_bench.spec import ResNetSpec, SpecError

from .helpers import REPO


def test_every_field_of_the_spec_has_a_row_in_its_order_with_its_default():
    fields = dataclasses.fields(ResNetSpec)
    assert [f.name for f in fields] == [f.name for f in SPEC_FIELDS]
    assert {f.name: f.default for f in fields} == DEFAULTS


# Values each kind of field accepts and one it refuses; choices are the row's own.
ACCEPTED = {INT: [1, 2, 64], FRACTION: [0, 0.0, 0.25, 0.999], FLAG: [False, True]}
REFUSED = {INT: [0, -1, True, 1.5, "2"], FRACTION: [-0.1, 1, 1.0, float("nan"), True, "0.1"], FLAG: ["true", 1, None],
           CHOICE: ["no-such-value", 1, None]}


def network_that_takes(f: Field) -> dict[str, str]:
    """The block and shortcut of a network that takes the field (the defaults where they do)."""
    block = DEFAULTS["block"] if DEFAULTS["block"] in f.blocks else f.blocks[0]
    shortcut = DEFAULTS["shortcut"] if DEFAULTS["shortcut"] in f.shortcuts else f.shortcuts[0]
    return {"block": block, "shortcut": shortcut}


def accepted(f: Field) -> list:
    return list(f.choices) if f.kind == CHOICE else ACCEPTED.get(f.kind, [])


@pytest.mark.parametrize("f", [f for f in SPEC_FIELDS if f.kind != "int_tuple"], ids=lambda f: f.name)
def test_what_a_row_accepts_builds_a_spec_and_a_value_outside_is_refused_naming_the_field(f):
    for value in accepted(f):
        assert f.accepts(value)
        spec = ResNetSpec(**{**network_that_takes(f), f.name: value})
        assert getattr(spec, f.name) == value
        assert ResNetSpec.parse(spec.format()) == spec  # the one-line form reads it back
    for value in REFUSED[f.kind]:
        assert not f.accepts(value)
        if value is None and f.default is None:
            continue  # unset: resolved from the other fields
        with pytest.raises(SpecError, match=f"^{f.name}="):
            ResNetSpec(**{**network_that_takes(f), f.name: value})


@pytest.mark.parametrize("f", [f for f in SPEC_FIELDS if f.kind == "int_tuple"], ids=lambda f: f.name)
def test_a_tuple_row_takes_one_integer_per_stage(f):
    assert f.accepts((1, 2)) and f.accepts([3])
    assert ResNetSpec(**{"layers": (1, 2), f.name: (1, 2)}).to_dict()[f.name] == [1, 2]
    for value in [(), (0,), (1, True), "1-2", 3]:
        assert not f.accepts(value)
        with pytest.raises(SpecError, match=f"^{f.name}"):
            ResNetSpec(**{"layers": (1,), f.name: value})


@pytest.mark.parametrize("f", [f for f in SPEC_FIELDS if f.blocks != BLOCKS or f.shortcuts != SHORTCUTS],
                         ids=lambda f: f.name)
def test_a_network_that_does_not_take_a_field_refuses_it_naming_the_field(f):
    value = next(v for v in accepted(f) if v != f.default)
    for block in BLOCKS:
        for shortcut in SHORTCUTS:
            kwargs = {"block": block, "shortcut": shortcut, f.name: value}
            if f.takes(block, shortcut):
                assert getattr(ResNetSpec(**kwargs), f.name) == value
            else:
                with pytest.raises(SpecError, match=f"^{f.name}="):
                    ResNetSpec(**kwargs)


def test_the_study_files_space_keys_are_the_searched_rows_and_the_four_of_depth_and_width():
    searched = {f.name for f in SPEC_FIELDS if f.searched}
    assert set(SPACE_KEYS) == searched | {"stages", "blocks", "base_width", "width_multiplier"}
    study = {"name": "s", "dataset": "fashion-mnist-mini", "objectives": [{"metric": "params"}]}
    for name in searched:
        f = FIELDS[name]
        assert SPACE[name].accepts == f.accepts
        assert parse_study(study).space[name].value == f.space_default
        with pytest.raises(StudyFileError, match=f"^space.{name}="):
            parse_study({**study, "space": {name: REFUSED.get(f.kind, ["no-such-value"])[0]}})


# The fingerprints of the shipped study files, computed before the [space] was read from the field table: a study
# stored by then resumes only if its file still fingerprints the same.
FINGERPRINTS = {
    "bench_space": "c4d2b41e0437b35b",
    "cifar10": "2705dceb9b5c19d2",
    "fashion_mnist": "e8675269d946acba",
    "fashion_mnist_cpu": "b7f6892a7713eff7",
    "quickstart": "faaa6d6dd0d5849f",
    "quickstart_mo_asha": "c553558e22866cd7",
    "quickstart_modern": "c9108e2ffff8db84",
}


def test_the_shipped_study_files_keep_their_fingerprints():
    assert sorted(p.stem for p in (REPO / "studies").glob("*.toml")) == sorted(FINGERPRINTS)
    for name, fingerprint in FINGERPRINTS.items():
        assert load_study_file(REPO / "studies" / f"{name}.toml").fingerprint() == fingerprint, name


def test_the_study_files_keys_keep_their_order_which_its_messages_list():
    assert SPACE_KEYS == ("stages", "blocks", "stem", "stem_width", "base_width", "width_multiplier", "block", "groups",
                          "width_per_group", "stride_on", "shortcut", "dropout", "zero_init_residual", "downsample",
                          "pad", "se_ratio", "drop_path")
    assert RECIPE_KEYS == ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "warmup_epochs",
                           "schedule", "label_smoothing", "precision", "channels_last", "compile")


def test_every_field_of_the_recipe_has_a_row_read_by_the_recipe_and_the_study_file():
    assert [f.name for f in dataclasses.fields(Recipe)] == [f.name for f in RECIPE_FIELDS]
    study = {"name": "s", "dataset": "fashion-mnist-mini", "objectives": [{"metric": "params"}]}
    for f in RECIPE_FIELDS:
        if f.rule:  # Recipe checks it
            with pytest.raises(RecipeError, match=f"^recipe {f.name}=.*; {re.escape(f.rule)}$"):
                Recipe(**{f.name: "no-such-value" if f.kind != "tuple" else (2,)})
        if f.accepted:  # a study file may give it
            with pytest.raises(StudyFileError, match=f"^recipe.{f.name}=.*{re.escape(f.accepted)}$"):
                parse_study({**study, "recipe": {f.name: "no-such-value" if f.kind != "str" else 1}})
    rules = {f.name: f.rule for f in RECIPE_FIELDS}
    assert rules["schedule"] == "schedule must be one of step, cosine, linear, constant"  # from recipe.SCHEDULES
