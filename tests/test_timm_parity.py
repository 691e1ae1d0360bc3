"""Every timm preset is timm's network down to the last parameter: same count, same conv + linear multiply-adds,
timm's state dict loads with strict=True under our names (no key needs mapping), the same outputs; and stochastic
depth drops what timm's drops, at timm's rates."""

from __future__ import annotations

import pytest
import timm  # a test dependency (pyproject.toml [test]): the reference these presets are checked against
import torch

import resnet_bench as rb
from resnet_bench import presets
from resnet_bench.models.blocks import DropPath
from resnet_bench.profiling import count_cost, quiet

# Construction and a 224x224 trace take seconds on 2 cores for these.
LARGE = {"resnet101d"}
TIMM = [pytest.param(n, marks=[pytest.mark.slow] if n in LARGE else []) for n in presets.names("timm")]


@pytest.fixture(scope="module")
def pair():
    """(ours, timm's) of a preset, both in eval mode with timm's random weights in both; built once per module."""
    built: dict[str, tuple[torch.nn.Module, torch.nn.Module]] = {}

    def get(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
        if name not in built:
            torch.manual_seed(0)
            reference = timm.create_model(name, pretrained=False).eval()
            state = reference.state_dict()
            # BN scales, shifts and statistics made random (variances positive), so that a BN in the wrong place shows.
            with torch.no_grad():
                for value in state.values():
                    if value.is_floating_point() and value.ndim == 1:
                        value.uniform_(0.5, 1.5)
            reference.load_state_dict(state, strict=True)
            ours = rb.build_model(name).eval()
            ours.load_state_dict(state, strict=True)
            built[name] = ours, reference
        return built[name]

    return get


def test_the_timm_family_is_the_issue_list():
    assert set(presets.names("timm")) == {"resnet26d", "resnet26t", "resnet50d", "resnet101d", "seresnet50",
                                          "seresnext50_32x4d"}


@pytest.mark.parametrize("name", TIMM)
def test_state_dict_keys_and_shapes_are_timms(name, pair):
    ours, reference = pair(name)
    # Our modules carry timm's names (conv1.0/.1/.3/.4/.6 of the deep stem, downsample.0/.1/.2, se.fc1/fc2), so
    # the load needs no mapping of names.
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in reference.state_dict().items()]


@pytest.mark.parametrize("name", TIMM)
def test_params_equal_timms_exactly(name, pair):
    ours, reference = pair(name)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("name", TIMM)
def test_outputs_equal_in_eval_mode_after_loading(name, pair):
    ours, reference = pair(name)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))  # any input shows a difference
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", TIMM)
def test_conv_and_linear_multiply_adds_equal_fvcore_on_timm(name, pair):
    from fvcore.nn import FlopCountAnalysis

    _, reference = pair(name)
    with quiet():
        analysis = FlopCountAnalysis(reference, torch.zeros(1, 3, 224, 224))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        by_op = analysis.by_operator()
    timm_macs = by_op["conv"] + by_op["linear"]
    assert round(count_cost(name).gflops * 1e9) == timm_macs


def test_drop_path_rates_rise_linearly_as_timms():
    ours = rb.build_model("resnet26d,drop_path=0.2")
    reference = timm.create_model("resnet26d", pretrained=False, drop_path_rate=0.2)
    rates = {n: m.p for n, m in ours.named_modules() if isinstance(m, DropPath)}
    expected = {n: m.drop_prob for n, m in reference.named_modules() if type(m).__name__ == "DropPath"}
    assert rates == pytest.approx(expected) and len(rates) == 7  # 8 blocks; the first one's rate is 0
    assert rates["layer4.1.drop_path"] == pytest.approx(0.2) and rates["layer1.1.drop_path"] == pytest.approx(0.2 / 7)


def test_in_training_stochastic_depth_drops_what_timms_drops():
    ours = rb.build_model("resnet26d,drop_path=0.5").train()
    reference = timm.create_model("resnet26d", pretrained=False, drop_path_rate=0.5).train()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    # Both draw one Bernoulli per sample per block, in block order, from the global generator.
    torch.manual_seed(3)
    expected = reference(x)
    torch.manual_seed(3)
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-6)
