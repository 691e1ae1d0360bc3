"""Every preset builds, runs, and has exactly the parameters its architecture defines."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import resnet_bench as rb
from resnet_bench import presets
from resnet_bench.presets import UnknownPresetError
from resnet_bench.spec import ResNetSpec, SpecError

from .helpers import run

# Exact trainable parameters, sum(p.numel()). torchvision's names equal its `num_params` metadata
# (checked against torchvision itself below); the CIFAR nets equal the hand count below.
EXACT_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnet20": 269_722,
    "resnet20_b": 272_474,
    "resnet20_c": 283_962,
    "resnet32": 464_154,
    "resnet32_b": 466_906,
    "resnet32_c": 489_594,
    "resnet44": 658_586,
    "resnet44_b": 661_338,
    "resnet44_c": 695_226,
    "resnet56": 853_018,
    "resnet56_b": 855_770,
    "resnet56_c": 900_858,
    "resnet110": 1_727_962,
    "resnet110_b": 1_730_714,
    "resnet110_c": 1_826_202,
    "resnet1202": 19_421_274,
    "resnet1202_b": 19_424_026,
    "resnet1202_c": 20_538_714,
    "plain20": 269_722,  # option A has no parameters, so a plain net counts as its ResNet
    "plain32": 464_154,
    "plain44": 658_586,
    "plain56": 853_018,
    "plain110": 1_727_962,
    "preact_resnet110": 1_727_962,  # option A, like resnet110: the same count by construction
    "preact_resnet164": 1_703_258,
    "preact_resnet1001": 10_327_706,
    "resnext29_1x64d": 4_914_250,
    "resnext29_2x64d": 9_130_314,
    "resnext29_4x64d": 17_562_442,
    "resnext29_8x64d": 34_426_698,
    "resnext29_16x64d": 68_155_210,
    "wrn16_8": 10_961_370,
    "wrn28_10": 36_479_194,
    "wrn40_4": 8_949_210,
    # timm's names equal timm.create_model(name)'s count (checked against timm itself in test_timm_parity.py)
    "resnet26d": 16_014_408,
    "resnet26t": 16_011_872,
    "resnet50d": 25_576_264,
    "resnet101d": 44_568_392,
    "seresnet50": 28_088_024,
    "seresnext50_32x4d": 27_559_896,
    "resnet20_se": 275_506,  # resnet20 + 9 SEs of 8 hidden channels: 16, 32, 64 wide (2 * 8c + 8 + c each)
    "resnet56_se": 870_370,
    "resnet20_d": 272_474,  # an average pool has no parameters: resnet20_b's count
    "resnet56_d": 855_770,
}

# Nets whose construction alone takes seconds on 2 cores.
LARGE = {"resnet101d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2", "resnet152", "resnet1202",
         "resnet1202_b", "resnet1202_c", "preact_resnet1001", "resnext29_16x64d"}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _marks(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if name in LARGE else []


def test_every_registered_preset_has_an_exact_count():
    assert set(presets.names()) == set(EXACT_PARAMS)


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in presets.names()])
def test_preset_builds_runs_and_has_exact_params(name):
    spec = presets.get(name)
    model = rb.build_model(name)
    assert n_params(model) == EXACT_PARAMS[name]
    size = 32 if spec.stem == "cifar" else 64
    # Training mode: an untrained 1202-layer net overflows with BN's initial running statistics.
    with torch.no_grad():
        out = model(torch.randn(2, spec.in_channels, size, size))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()


def _hand_count(spec: ResNetSpec) -> int:
    """Parameters counted layer by layer from the paper's description, independently of the model code."""
    k = 7 if spec.stem == "imagenet" else 3
    total = spec.in_channels * spec.stem_width * k * k + (0 if spec.is_preact else 2 * spec.stem_width)
    if spec.stem in ("deep", "deep_tiered"):  # three 3x3 convs, BN after the first two: c -> w1 -> w/2 -> w
        half = spec.stem_width // 2
        first = 3 * (half // 4) if spec.stem == "deep_tiered" else half
        convs = spec.in_channels * first + first * half + half * spec.stem_width
        total = 9 * convs + 2 * (first + half) + (0 if spec.is_preact else 2 * spec.stem_width)
    channels = spec.stem_width
    for stage, (blocks, planes) in enumerate(zip(spec.layers, spec.stage_widths)):
        out = planes * spec.expansion
        inner = spec.inner_widths[stage] if spec.is_bottleneck else planes
        for b in range(blocks):
            if spec.is_bottleneck:
                convs = channels * inner + inner * inner * 9 // spec.groups + inner * out
                bns = (channels + 2 * inner) if spec.is_preact else (2 * inner + out)
            else:
                convs = channels * planes * 9 + planes * planes * 9
                bns = (channels + planes) if spec.is_preact else 2 * planes
            total += convs + 2 * bns
            if spec.se_ratio:  # two 1x1 convs with bias: out -> hidden -> out, hidden a multiple of 8 (timm's rule)
                hidden = max(8, int(out * spec.se_ratio + 4) // 8 * 8)
                total += 2 * out * hidden + hidden + out
            changes = channels != out or (stage > 0 and b == 0)
            if spec.shortcut == "C" or (spec.shortcut == "B" and changes):
                total += channels * out + (0 if spec.is_preact else 2 * out)
            channels = out
    total += 2 * channels if spec.is_preact else 0
    return total + channels * spec.num_classes + spec.num_classes


@pytest.mark.parametrize("name", presets.names())
def test_exact_count_equals_the_hand_count(name):
    assert _hand_count(presets.get(name)) == EXACT_PARAMS[name]


def test_resnet20_counted_by_hand():
    # stem 3*16*9 + BN 2*16; stage 1: 6 convs 16*16*9 + 6 BN; stage 2: 16*32*9 + 5 * 32*32*9 + 6 BN;
    # stage 3: 32*64*9 + 5 * 64*64*9 + 6 BN; classifier 64*10 + 10. Option A adds nothing.
    by_hand = (432 + 32) + (6 * 2304 + 6 * 32) + (4608 + 5 * 9216 + 6 * 64) + (18432 + 5 * 36864 + 6 * 128) + 650
    assert by_hand == 269_722 == n_params(rb.build_model("resnet20"))


def test_shortcut_b_adds_exactly_two_projections_to_resnet20():
    # 16->32 and 32->64: a 1x1 conv plus a BN each.
    assert n_params(rb.build_model("resnet20_b")) - n_params(rb.build_model("resnet20")) == \
        (16 * 32 + 64) + (32 * 64 + 128)


# -- the name patterns and the registry --------------------------------------------------------------

def test_any_wrn_by_name():
    spec = presets.get("wrn22_8")
    assert spec.layers == (3, 3, 3) and spec.stage_widths == (128, 256, 512) and spec.block == "preact_basic"
    assert presets.family("wrn22_8") == "wrn"
    with pytest.raises(SpecError, match="depth=27"):
        presets.get("wrn27_2")


def test_any_resnext29_by_name():
    spec = presets.get("resnext29_32x4d")
    assert (spec.groups, spec.width_per_group, spec.inner_widths) == (32, 4, (128, 256, 512))


def test_unknown_preset_suggests_the_nearest_names():
    with pytest.raises(UnknownPresetError) as info:
        rb.build_model("resnet5O")
    message = str(info.value)
    assert "unknown model 'resnet5O'" in message and "resnet50" in message and "resnet-bench models" in message
    assert isinstance(info.value, ValueError)


def test_cifar_resnet_depth_must_be_6n_plus_2():
    with pytest.raises(SpecError, match="depth=21"):
        presets.cifar_resnet(21)


def test_registry_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="registered twice"):
        presets._register("resnet18", "torchvision", lambda: ResNetSpec())


def test_resolve_accepts_every_form(tmp_path):
    spec = presets.get("resnet56")
    path = tmp_path / "r56.json"
    path.write_text(spec.to_json())
    assert presets.resolve(spec) is spec
    assert presets.resolve("resnet56") == spec
    assert presets.resolve(spec.format()) == spec
    assert presets.resolve(path) == spec
    assert presets.resolve(str(path)) == spec
    with pytest.raises(SpecError, match="does not exist"):
        presets.resolve(str(tmp_path / "nope.json"))
    with pytest.raises(ValueError, match="model=3"):
        presets.resolve(3)  # type: ignore[arg-type]
    # A preset with fields replaced: "this preset, but".
    narrow = presets.resolve("resnet56, stem_width=8,shortcut=B")
    assert narrow == dataclasses.replace(spec, stem_width=8, shortcut="B") and narrow.layers == (9, 9, 9)
    with pytest.raises(SpecError, match="unknown spec field 'stem_widht'"):
        presets.resolve("resnet56,stem_widht=8")
    with pytest.raises(presets.UnknownPresetError, match="resnet20,stem_width=8"):
        presets.resolve("resnet57,stem_width=8")


def test_a_preset_with_an_override_on_the_command_line(capsys):
    code, out, err = run(capsys, "profile", "resnet20,stem_width=8", "--format", "json")
    assert code == 0, err
    # Stages of 8, 16, 32 planes instead of 16, 32, 64: about a quarter of resnet20's parameters.
    params = sum(p.numel() for p in rb.build_model(presets.resolve("resnet20,stem_width=8")).parameters())
    full = sum(p.numel() for p in rb.build_model(presets.get("resnet20")).parameters())
    assert json.loads(out)[0]["params"] == params and 0.2 < params / full < 0.3


def test_each_family_holds_the_networks_its_name_promises():
    families = {presets.family(n) for n in presets.names()}
    assert families == {"torchvision", "timm", "cifar-resnet", "cifar-plain", "preact-resnet", "resnext29", "wrn"}
    # torchvision's family is exactly torchvision's ResNet builders, and each of its specs is torchvision's.
    assert set(presets.names("torchvision")) == {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
        "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"}
    for name in presets.names():
        spec, family = presets.get(name), presets.family(name)
        if family in ("torchvision", "timm"):  # ImageNet networks: 4 stages, an ImageNet stem, 1000 classes
            assert len(spec.layers) == 4 and spec.stem in ("imagenet", "deep", "deep_tiered") and \
                spec.num_classes == 1000, name
        else:  # the CIFAR papers' networks: 3 stages on a 3x3 stem, 10 classes
            assert len(spec.layers) == 3 and spec.stem == "cifar" and spec.num_classes == 10, name
        assert (spec.shortcut == "none") == (family == "cifar-plain"), name
        if family == "preact-resnet":
            assert spec.block.startswith("preact_"), name
        if family == "resnext29":
            assert spec.block == "bottleneck" and spec.layers == (3, 3, 3), name
        if family == "wrn":
            assert spec.widths is not None and spec.widths[0] >= 16 * 4, name  # widened by k >= 4
