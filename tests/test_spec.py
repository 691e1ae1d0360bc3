"""ResNetSpec: validation that names the field, and the dict, JSON and one-line round trips."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resnet_bench import presets
from resnet_bench.errors import BadInputError
from resnet_bench.spec import BLOCKS, DOWNSAMPLES, FIELD_NAMES, PADS, SHORTCUTS, STEMS, ResNetSpec, SpecError


def test_default_spec_is_resnet18():
    assert ResNetSpec() == presets.get("resnet18")
    assert ResNetSpec().stage_widths == (64, 128, 256, 512)


def test_one_line_form_of_the_issue_example():
    spec = ResNetSpec.parse("block=bottleneck,layers=3-4-6-3,groups=32,width_per_group=4")
    assert spec == presets.get("resnext50_32x4d")
    assert spec.format() == "block=bottleneck,layers=3-4-6-3,groups=32,width_per_group=4"
    assert spec.strided_conv == "3x3"  # torchvision's v1.5 default for a bottleneck
    assert spec.inner_widths == (128, 256, 512, 1024)  # int(64 * 4 / 64) * 32 = 128, as torchvision


def test_parse_tolerates_spaces_and_case_of_shortcut_letters():
    assert ResNetSpec.parse(" block = basic , layers=1 , shortcut=a ") == ResNetSpec(layers=(1,), shortcut="A")


def test_widths_default_to_doubling_from_the_stem():
    spec = ResNetSpec(layers=(1, 1, 1), stem="cifar", stem_width=16)
    assert spec.stage_widths == (16, 32, 64)
    assert "widths" not in spec.format()
    assert ResNetSpec(layers=(1, 1), widths=(16, 48)).format() == "block=basic,layers=1-1,widths=16-48"


def test_derived_properties():
    spec = presets.get("resnet50")
    assert (spec.depth, spec.expansion, spec.stage_channels) == (50, 4, (256, 512, 1024, 2048))
    assert presets.get("resnet56").depth == 56
    assert presets.get("wrn28_10").depth == 26  # WRN's name counts its two projection convs as well


# -- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", presets.names())
def test_every_preset_round_trips(name):
    spec = presets.get(name)
    assert ResNetSpec.parse(spec.format()) == spec
    assert ResNetSpec.from_json(spec.to_json()) == spec
    assert ResNetSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@st.composite
def specs(draw: st.DrawFn) -> ResNetSpec:
    block = draw(st.sampled_from(BLOCKS))
    stages = draw(st.integers(1, 5))
    stem = draw(st.sampled_from(STEMS))
    stem_width = draw(st.integers(8 if stem.startswith("deep") else 1, 128))
    bottleneck = block.endswith("bottleneck")
    kwargs = dict(
        block=block,
        layers=tuple(draw(st.lists(st.integers(1, 40), min_size=stages, max_size=stages))),
        stem=stem,
        stem_width=stem_width,
        shortcut=draw(st.sampled_from(("B", "C", "none"))),
        dropout=draw(st.sampled_from((0.0, 0.1, 0.3, 0.5, 0.999))),
        se_ratio=draw(st.sampled_from((0.0, 1 / 16, 0.25, 0.1 + 0.2))),
        in_channels=draw(st.integers(1, 4)),
        num_classes=draw(st.integers(1, 1000)),
    )
    if draw(st.booleans()):
        kwargs["widths"] = tuple(draw(st.lists(st.integers(1, 512), min_size=stages, max_size=stages)))
    if bottleneck:
        kwargs["groups"] = draw(st.integers(1, 64))
        kwargs["width_per_group"] = draw(st.integers(64, 256))
        kwargs["stride_on"] = draw(st.sampled_from((None, "3x3", "1x1")))
    if not block.startswith("preact") and kwargs["shortcut"] != "none":
        kwargs["zero_init_residual"] = draw(st.booleans())
    if kwargs["shortcut"] != "none":
        kwargs["downsample"] = draw(st.sampled_from(DOWNSAMPLES))
        kwargs["drop_path"] = draw(st.sampled_from((0.0, 0.05, 0.2, 0.5)))
    return ResNetSpec(**kwargs)


@settings(max_examples=300, deadline=None)
@given(specs())
def test_round_trip_property(spec):
    assert ResNetSpec.parse(spec.format()) == spec
    assert ResNetSpec.from_json(spec.to_json()) == spec
    assert ResNetSpec.parse(str(spec)) == spec
    assert dataclasses.replace(spec) == spec


def test_json_file_round_trip(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(presets.get("wrn16_8").to_json())
    assert ResNetSpec.from_json_file(path) == presets.get("wrn16_8")
    assert presets.resolve(str(path)) == presets.get("wrn16_8")


def test_spec_is_frozen_and_hashable():
    spec = presets.get("resnet20")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.groups = 2  # type: ignore[misc]
    assert len({spec, presets.get("resnet20"), presets.get("resnet32")}) == 2


# -- bad input: a SpecError (a ValueError) that names the field, the value and what is accepted -------

BAD = [
    (dict(groups=0, block="bottleneck"), ["groups=0", ">= 1"]),
    (dict(layers=(3, 0, 3)), ["layers[1]=0", ">= 1"]),
    (dict(layers=()), ["layers", "non-empty"]),
    (dict(block="dense"), ["block='dense'", *BLOCKS]),
    (dict(shortcut="D"), ["shortcut='D'", *SHORTCUTS]),
    (dict(stem="tiny"), ["stem='tiny'", "imagenet", "cifar"]),
    (dict(groups=32), ["groups=32", "bottleneck option", "block=basic"]),
    (dict(width_per_group=4), ["width_per_group=4", "bottleneck option"]),
    (dict(stride_on="1x1"), ["stride_on='1x1'", "bottleneck option"]),
    (dict(block="bottleneck", stride_on="5x5"), ["stride_on='5x5'", "3x3", "1x1"]),
    (dict(layers=(1, 1), widths=(16,)), ["widths=16", "1 stages", "layers=1-1"]),
    (dict(dropout=1.0), ["dropout=1.0", "[0, 1)"]),
    (dict(dropout="0.3"), ["dropout='0.3'"]),
    (dict(num_classes=0), ["num_classes=0"]),
    (dict(in_channels=True), ["in_channels=True"]),
    (dict(zero_init_residual="yes"), ["zero_init_residual='yes'", "true or false"]),
    (dict(block="preact_basic", zero_init_residual=True), ["zero_init_residual", "pre-activation"]),
    (dict(shortcut="none", zero_init_residual=True), ["zero_init_residual", "shortcut=none"]),
    (dict(shortcut="A", layers=(1, 1), widths=(64, 32)), ["shortcut=A", "64 to 32"]),
    (dict(block="bottleneck", width_per_group=1, layers=(1, 1), widths=(16, 32)),
     ["width_per_group=1", "0 channels", ">= 4"]),
    # the modern tweaks: out of range, or on a network that cannot take them
    (dict(se_ratio=-0.1), ["se_ratio=-0.1", "[0, 1)"]),
    (dict(se_ratio=1), ["se_ratio=1", "[0, 1)"]),
    (dict(se_ratio="1/16"), ["se_ratio='1/16'", "[0, 1)"]),
    (dict(drop_path=1), ["drop_path=1", "[0, 1)"]),
    (dict(drop_path=-0.1), ["drop_path=-0.1", "[0, 1)"]),
    (dict(drop_path=float("nan")), ["drop_path=nan", "[0, 1)"]),
    (dict(downsample="pool"), ["downsample='pool'", *DOWNSAMPLES]),
    (dict(downsample="avgpool", shortcut="A"), ["downsample='avgpool'", "shortcut=A", "shortcut=B or C"]),
    (dict(downsample="avgpool", shortcut="none"), ["downsample='avgpool'", "shortcut=none", "shortcut=B or C"]),
    (dict(pad="left", shortcut="A"), ["pad='left'", *PADS]),
    (dict(pad="both"), ["pad='both'", "shortcut=B", "shortcut=A"]),
    (dict(drop_path=0.1, shortcut="none"), ["drop_path=0.1", "shortcut=none"]),
    (dict(stem="deep", stem_width=1), ["stem_width=1", "stem=deep", ">= 2"]),
    (dict(stem="deep_tiered", stem_width=4), ["stem_width=4", "stem=deep_tiered", ">= 8"]),
]


@pytest.mark.parametrize("kwargs, words", BAD, ids=[str(k) for k, _ in BAD])
def test_bad_field_is_a_value_error_naming_it(kwargs, words):
    with pytest.raises(SpecError) as info:
        ResNetSpec(**kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, BadInputError)
    for word in words:
        assert word in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "line, words",
    [
        ("block=basic,depth=18", ["unknown spec field 'depth'", "layers", "width_per_group"]),
        ("block=basic,block=bottleneck", ["'block' is given twice"]),
        ("block=basic,layers=3-x-3", ["layers='3-x-3'", "integers joined by '-'"]),
        ("block=basic,layers=3--3", ["layers='3--3'"]),
        ("groups=two,block=bottleneck", ["groups='two'", "integer"]),
        ("block=basic,dropout=lots", ["dropout='lots'"]),
        ("block=basic,se_ratio=lots", ["se_ratio='lots'", "[0, 1)"]),
        ("block=basic,drop_path=some", ["drop_path='some'", "[0, 1)"]),
        ("block=basic,zero_init_residual=maybe", ["zero_init_residual='maybe'"]),
        ("block=basic,layers", ["'layers' is not key=value"]),
        ("block=basic,layers=2-0", ["layers[1]=0"]),
        (" , ", ["empty one-line spec"]),
    ],
)
def test_bad_one_line_spec(line, words):
    with pytest.raises(SpecError) as info:
        ResNetSpec.parse(line)
    for word in words:
        assert word in str(info.value)


def test_bad_json(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        ResNetSpec.from_json_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{block: basic")
    with pytest.raises(SpecError, match="bad.json: the JSON spec does not parse"):
        ResNetSpec.from_json_file(bad)
    with pytest.raises(SpecError, match="unknown spec field 'depth'"):
        ResNetSpec.from_json('{"block": "basic", "depth": 18}')
    with pytest.raises(SpecError, match="JSON object"):
        ResNetSpec.from_json("[1, 2]")
    with pytest.raises(SpecError, match=r"layers\[0\]='3'"):
        ResNetSpec.from_json('{"layers": ["3"]}')


def test_field_names_are_the_dataclass_fields():
    assert FIELD_NAMES[:2] == ("block", "layers")
    assert set(FIELD_NAMES) == set(ResNetSpec().to_dict())


# -- fields as given, derived values as properties: dataclasses.replace stays correct ------------------

def test_replace_stem_width_recomputes_the_default_widths():
    from resnet_bench.models import build_model  # imports torch, which no other test here needs

    spec = dataclasses.replace(presets.get("resnet18"), stem_width=32)
    assert spec.stage_widths == (32, 64, 128, 256)
    assert spec.widths is None
    assert spec.format() == "block=basic,layers=2-2-2-2,stem_width=32"
    replaced, parsed = build_model(spec), build_model("block=basic,layers=2-2-2-2,stem_width=32")
    assert sum(p.numel() for p in replaced.parameters()) == sum(p.numel() for p in parsed.parameters())


def test_replace_a_bottleneck_with_a_basic_block():
    spec = dataclasses.replace(presets.get("resnext50_32x4d"), block="basic", groups=1, width_per_group=64)
    assert spec.stride_on is None and spec.strided_conv is None
    assert spec == presets.get("resnet34")


def test_stride_on_keeps_what_was_given_and_strided_conv_resolves_it():
    assert ResNetSpec(block="bottleneck").stride_on is None
    assert ResNetSpec(block="bottleneck").strided_conv == "3x3"  # torchvision's "v1.5"
    assert ResNetSpec(block="bottleneck", stride_on="1x1").strided_conv == "1x1"
    assert ResNetSpec().strided_conv is None


def test_explicit_default_widths_equal_and_hash_as_none():
    implied = ResNetSpec(widths=(64, 128, 256, 512))
    assert implied.widths == (64, 128, 256, 512) and ResNetSpec().widths is None
    assert implied == ResNetSpec() and hash(implied) == hash(ResNetSpec())
    assert len({implied, ResNetSpec(), presets.get("resnet18")}) == 1
    explicit = ResNetSpec(block="bottleneck", stride_on="3x3")
    assert explicit == ResNetSpec(block="bottleneck") and hash(explicit) == hash(ResNetSpec(block="bottleneck"))
    assert ResNetSpec(widths=(64, 128, 256, 256)) != ResNetSpec()
    assert ResNetSpec() != "block=basic,layers=2-2-2-2"


def test_dict_keeps_the_fields_as_given():
    data = presets.get("resnet50").to_dict()
    assert data["widths"] is None and data["stride_on"] is None
    back = ResNetSpec.from_dict(json.loads(json.dumps(data)))
    assert back.widths is None and back.stride_on is None
    assert dataclasses.replace(back, stem_width=32).stage_widths == (32, 64, 128, 256)
    # A dict of an older version stores the filled-in values; it still loads, and equals the spec.
    old = dict(data, widths=[64, 128, 256, 512], stride_on="3x3")
    assert ResNetSpec.from_dict(old) == presets.get("resnet50")
    assert ResNetSpec.from_dict(old).to_dict()["widths"] == [64, 128, 256, 512]


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_survives_replace(name):
    spec = presets.get(name)
    assert dataclasses.replace(spec) == spec and hash(dataclasses.replace(spec)) == hash(spec)
    assert ResNetSpec.parse(spec.format()) == spec and hash(ResNetSpec.parse(spec.format())) == hash(spec)
    # A field is None exactly when the preset leaves it to its default, which the one-line form omits.
    line = spec.format()
    assert (spec.widths is None) == ("widths=" not in line)
    assert (spec.stride_on is None) == ("stride_on=" not in line)
    # Replacing a field is editing the one-line form: what depended on it follows.
    items = dict(item.split("=") for item in line.split(","))
    items["stem_width"] = str(2 * spec.stem_width)
    edited = ResNetSpec.parse(",".join(f"{k}={v}" for k, v in items.items()))
    assert dataclasses.replace(spec, stem_width=2 * spec.stem_width) == edited


# -- the modern tweaks: fields at their defaults leave every earlier form as it was ----------------------------

NEW_FIELDS = ("downsample", "pad", "se_ratio", "drop_path")


def test_new_fields_default_to_the_earlier_networks_and_leave_earlier_forms_alone():
    assert [ResNetSpec().to_dict()[k] for k in NEW_FIELDS] == ["conv", "after", 0.0, 0.0]
    for name in presets.names():
        if presets.family(name) != "timm" and not name.endswith(("_se", "_d")):
            assert not any(f"{k}=" in presets.get(name).format() for k in NEW_FIELDS), name
    # A dict of the earlier release has none of the new keys: it loads as the same network.
    old = {k: v for k, v in presets.get("resnet56").to_dict().items() if k not in NEW_FIELDS}
    assert ResNetSpec.from_dict(old) == presets.get("resnet56")


def test_one_line_forms_of_the_modern_presets():
    assert presets.get("resnet50d").format() == "block=bottleneck,layers=3-4-6-3,stem=deep,downsample=avgpool"
    assert presets.get("seresnet50").format() == "block=bottleneck,layers=3-4-6-3,se_ratio=0.0625"
    assert presets.get("resnet26t").format() == "block=bottleneck,layers=2-2-2-2,stem=deep_tiered,downsample=avgpool"
    line = "block=basic,layers=3-3-3,stem=cifar,stem_width=16,shortcut=A,pad=both,se_ratio=0.25,drop_path=0.1"
    spec = ResNetSpec.parse(line)
    assert (spec.pad, spec.se_ratio, spec.drop_path) == ("both", 0.25, 0.1) and spec.format() == line
    assert ResNetSpec.parse("block=basic,se_ratio=0,drop_path=0") == ResNetSpec()  # 0 is off, the default
