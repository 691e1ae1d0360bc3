"""Cost figures: fvcore's FLOPs equal torchvision's published `_ops`, agree with PyTorch's own counter,
add up over stages, and are checkable by hand."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import sys

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import resnet_bench as rb
from resnet_bench import presets
from resnet_bench.errors import BadInputError
from resnet_bench.cost_tables import compute_reference_row, compute_row, cost_on_images
from resnet_bench.preset_costs import DATASET_GEOMETRY, preset_costs, reference_costs
from resnet_bench.profiling import count_cost, count_on_meta, measure_speed, quiet
from resnet_bench.published import published_results
from resnet_bench.spec import ResNetSpec

from .helpers import run, write_cifar

LARGE = {"resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in LARGE else []) for n in presets.names("torchvision")]
)
def test_gflops_equal_torchvision_ops(name):
    """torchvision's weights metadata: `_ops` (GFLOPs, 1 multiply-add = 1 FLOP, 224x224) and `num_params`."""
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    cost = count_cost(name)
    assert round(cost.gflops, 3) == meta["_ops"]
    assert cost.params == meta["num_params"]
    assert cost.gflops_total > cost.gflops  # fvcore adds batch norm and pooling


def test_the_issue_figures_for_resnext50():
    cost = rb.profile("resnext50_32x4d").cost
    assert (cost.params, f"{cost.gflops:.3f}", cost.input_size) == (25_028_904, "4.230", 224)


@pytest.mark.parametrize("name, size", [("resnet18", 64), ("resnet56", 32), ("wrn16_8", 32),
                                        ("resnext29_2x64d", 32), ("preact_resnet164", 32), ("resnet20_c", 32),
                                        ("resnet26d", 64), ("seresnext50_32x4d", 64), ("resnet20_se", 32)])
def test_fvcore_agrees_with_torch_flop_counter(name, size):
    """PyTorch's FlopCounterMode counts 2 FLOPs per multiply-add, and only convolutions and matrix products."""
    model = rb.build_model(name).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    assert counter.get_total_flops() == round(2 * count_cost(name, size).gflops * 1e9)


def test_one_trace_equals_fvcore_separate_analyses():
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

    model = rb.build_model("resnet56").eval()
    x = torch.zeros(1, 3, 32, 32)
    with quiet():
        flops = FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
        acts = ActivationCountAnalysis(model, x).unsupported_ops_warnings(False)
        flops_total, acts_total = flops.total(), acts.total()
        conv_linear = flops.by_operator()["conv"] + flops.by_operator()["linear"]
    cost = count_cost("resnet56")
    assert round(cost.gflops_total * 1e9) == flops_total
    assert round(cost.gflops * 1e9) == conv_linear
    assert cost.activations == acts_total


def test_a_tiny_net_counted_by_hand():
    # 8x8 input, cifar stem 3->4 channels, one basic block 4->4, classifier 4->5.
    spec = ResNetSpec(layers=(1,), stem="cifar", stem_width=4, num_classes=5)
    cost = count_cost(spec, 8)
    positions = 8 * 8
    stem, block, fc = 3 * 4 * 9 * positions, 2 * 4 * 4 * 9 * positions, 4 * 5
    assert round(cost.gflops * 1e9) == stem + block + fc == 25_364
    assert cost.activations == 3 * 4 * positions + 5  # three conv outputs and the logits
    assert [s.name for s in cost.stages] == ["stem", "layer1", "head"]
    assert [s.output_shape for s in cost.stages] == [(4, 8, 8), (4, 8, 8), (5,)]


@pytest.mark.parametrize("name", ["resnet50", "wrn28_10", "preact_resnet164", "resnet20"])
def test_stages_add_up_to_the_totals(name):
    cost = count_cost(name)
    assert sum(s.params for s in cost.stages) == cost.params
    assert sum(s.activations for s in cost.stages) == cost.activations
    assert sum(s.gflops for s in cost.stages) == pytest.approx(cost.gflops, rel=1e-12)


def test_input_size_and_channels():
    assert count_cost("resnet50").input_size == 224 and count_cost("resnet56").input_size == 32
    small = count_cost("resnet50", 112)
    assert small.gflops < count_cost("resnet50").gflops / 3
    grey = rb.profile("resnet18", in_channels=1).cost
    assert grey.in_channels == 1 and count_cost("resnet18").params - grey.params == 2 * 64 * 7 * 7


def test_cost_is_cached_by_the_one_line_form():
    spec = presets.get("resnet32")
    assert count_cost(spec) is count_cost(spec.format()) is count_cost("resnet32")
    assert count_cost(spec, 64) is not count_cost(spec)


@pytest.mark.parametrize("size", [0, -3, True, "32", 2.5])
def test_bad_input_size(size):
    with pytest.raises(BadInputError, match="input_size"):
        count_cost("resnet20", size)


def test_bad_speed_options():
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match="no CUDA GPU"):
            rb.profile("resnet20", speed=True, device="cuda")
    with pytest.raises(BadInputError, match="cuda:99"):
        rb.profile("resnet20", speed=True, device="cuda:99")
    with pytest.raises(BadInputError, match="device='tpu'"):
        rb.profile("resnet20", speed=True, device="tpu")
    with pytest.raises(BadInputError, match="float16' is not accepted on cpu"):
        rb.profile("resnet20", speed=True, dtype="float16")
    with pytest.raises(BadInputError, match="batch_size=0"):
        measure_speed("resnet20", batch_size=0)


def test_measured_speed_on_cpu():
    speed = measure_speed("resnet20", batch_size=4, runs=3, warmup=1, train=True)
    assert speed.device == "cpu" and speed.threads == torch.get_num_threads() and speed.runs == 3
    assert speed.latency_ms > 0 and speed.throughput > 0 and speed.train_throughput > 0
    assert speed.peak_memory_mb is None
    row = dataclasses.replace(rb.profile("resnet20"), speed=speed).to_row()
    assert row["params"] == 269_722 and row["batch_size"] == 4 and "stages" not in row


def test_no_warning_reaches_the_user():
    code = "from resnet_bench.profiling import count_cost; count_cost('resnet20'); count_cost('resnet50', 64)"
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""


def test_preset_table_lists_every_preset():
    assert list(preset_costs()) == presets.names()


@pytest.mark.slow
@pytest.mark.parametrize("name", presets.names())
def test_preset_table_row_is_what_fvcore_measures_now(name):
    """The shipped table cannot drift: rebuild it with `python -m resnet_bench.cost_tables`."""
    assert compute_row(name) == preset_costs()[name]


def test_reference_table_has_every_published_row_at_its_data_sets_geometry():
    assert list(reference_costs()) == [(r.model, r.dataset) for r in published_results()]
    for (_, dataset), row in reference_costs().items():
        assert (row["in_channels"], row["num_classes"], row["input_size"]) == DATASET_GEOMETRY[dataset]


@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10", "cifar100"])
def test_reference_geometry_is_what_the_trainer_sees(dataset, tmp_path, monkeypatch):
    """Channels and classes reach a trial's spec through spec_for_data; the loaded image size is its input_size.
    ImageNet has no loader: its geometry is the 224x224 crop of torchvision's published accuracies."""
    from resnet_bench.data import load_dataset
    from resnet_bench.train import spec_for_data

    if dataset == "fashion-mnist":
        data = load_dataset("fashion-mnist-mini")  # real Fashion-MNIST images, shipped; the full set may be absent
    else:
        monkeypatch.setenv("RESNET_BENCH_DATA", str(tmp_path))
        write_cifar(tmp_path, dataset, n_train=2, n_test=1, classes=10 if dataset == "cifar10" else 100)
        data = load_dataset(dataset)
    spec = spec_for_data(presets.get("resnet20"), data)
    assert (spec.in_channels, spec.num_classes, data.image_size) == DATASET_GEOMETRY[dataset]


def test_cost_on_images_reads_the_tables_and_traces_a_geometry_they_lack():
    shipped = cost_on_images("wrn28_10", in_channels=1, num_classes=10, input_size=28)
    assert shipped == {"params": 36_478_906, "gflops": 4.014199}  # the fashion-mnist row
    # No published row has resnet20 on 64x64 grey images: traced now, rounded as the tables store it.
    traced = cost_on_images("resnet20", in_channels=1, num_classes=10, input_size=64)
    spec = dataclasses.replace(presets.get("resnet20"), in_channels=1)
    assert traced == {"params": count_cost(spec, 64).params, "gflops": round(count_cost(spec, 64).gflops, 6)}
    assert traced["params"] == 269_722 - 3 * 3 * 2 * 16  # a grey input: 2 stem channels fewer


@pytest.mark.slow
@pytest.mark.parametrize("model, dataset", [(r.model, r.dataset) for r in published_results()])
def test_reference_table_row_is_what_fvcore_measures_now(model, dataset):
    """The shipped table cannot drift: rebuild it with `python -m resnet_bench.cost_tables`."""
    assert compute_reference_row(model, dataset) == reference_costs()[model, dataset]


# -- counting without weights -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", presets.names())
def test_counts_on_the_meta_device_equal_fvcore_on_every_preset(name):
    """The shipped table is fvcore's trace (and tested against it above): the meta count must give the same."""
    row, counts = preset_costs()[name], count_on_meta(name)
    assert (counts.params, round(counts.gflops, 6), counts.activations) == (
        row["params"], row["gflops"], row["activations"])


@pytest.mark.parametrize(("spec", "size"), [
    ("block=basic,layers=2-1-1,stem=cifar,stem_width=8,shortcut=A,in_channels=1", 28),  # odd sizes after stride 2
    ("block=bottleneck,layers=1-1-1,stem=cifar,stem_width=8,groups=4,width_per_group=16,shortcut=C", 29),
    ("block=preact_basic,layers=1-2,stem=cifar,stem_width=16,shortcut=none,num_classes=7", 32),
    ("block=preact_bottleneck,layers=1-1-1-1,stem=imagenet,stem_width=16,width_per_group=8", 67),
    # the modern fields: an odd size through ResNet-D's ceil-mode pool, SE's 1x1 convs, the deep stems
    ("block=bottleneck,layers=1-2,stem=deep,stem_width=16,downsample=avgpool,se_ratio=0.25,drop_path=0.1", 37),
    ("block=basic,layers=1-1-1,stem=deep_tiered,stem_width=16,shortcut=C,downsample=avgpool", 29),
    ("block=preact_basic,layers=1-1,stem=cifar,stem_width=8,shortcut=A,pad=both,se_ratio=0.5", 31),
])
def test_counts_on_the_meta_device_equal_a_live_fvcore_trace(spec, size):
    cost, counts = count_cost(spec, size), count_on_meta(spec, size)
    assert (counts.params, counts.gflops, counts.activations) == (cost.params, cost.gflops, cost.activations)


def test_counting_a_billion_parameter_network_allocates_no_weight():
    """The dry run once built a 1.9e9-parameter candidate (9.9 GB); on the meta device it is a few megabytes."""
    import tracemalloc

    spec = "block=bottleneck,layers=3-4-6-3,stem=imagenet,stem_width=64,width_per_group=1024"
    tracemalloc.start()
    try:
        counts = count_on_meta(spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts.params > 1_000_000_000 and peak < 50e6


# -- profile answers a preset from the shipped table ------------------------------------------------------------

def test_profile_of_a_preset_at_its_native_size_reads_the_table_and_imports_no_torch():
    code = ("import sys; from resnet_bench.cli import main\n"
            "try:\n    main(['profile', 'resnext50_32x4d', '--format', 'csv'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'fvcore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == "[]"
    row = next(csv.DictReader(out[:-1]))
    assert (row["params"], row["gflops"], row["cost_source"]) == ("25028904", "4.23048", "table")


@pytest.mark.parametrize(("args", "source"), [
    (["resnet20"], "table"),
    (["resnet20", "--input-size", "32"], "table"),  # the native size, said aloud
    (["resnet20", "--input-size", "28"], "trace"),
    (["resnet20", "--in-channels", "1"], "trace"),
    (["resnet20,stem_width=8"], "trace"),  # a preset with an override is another network
    (["block=basic,layers=3-3-3,stem=cifar,stem_width=16,shortcut=A,num_classes=10"], "trace"),  # not by name
])
def test_profile_says_where_its_cost_came_from(capsys, args, source):
    code, out, err = run(capsys, "profile", *args, "--format", "csv")
    row = next(csv.DictReader(io.StringIO(out)))
    assert code == 0 and row["cost_source"] == source, err
    code, out, _ = run(capsys, "profile", *args)
    said = " ".join(out.split())
    assert ("Cost: from the shipped preset table" in said) == (source == "table")
    assert ("Cost: traced now by fvcore" in said) == (source == "trace")


def test_profile_by_stage_traces_what_the_table_lacks(capsys):
    code, out, _ = run(capsys, "profile", "resnet20", "--by-stage")
    said = " ".join(out.split())
    assert code == 0 and "Cost: traced now by fvcore" in said and "layer3" in said
    code, out, _ = run(capsys, "profile", "resnet20", "--format", "json")
    row = json.loads(out)[0]
    assert row["cost_source"] == "trace" and [s["name"] for s in row["stages"]][-1] == "head"
