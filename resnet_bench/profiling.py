"""Cost of a network: parameters, fvcore FLOPs and activations from one trace, per stage; measured speed.

FLOPs follow fvcore's convention, one multiply-add = one FLOP. The headline `gflops` counts
convolutions and linear layers, which reproduces torchvision's `_ops` metadata; `gflops_total` is
everything fvcore counts (adding batch norm and adaptive pooling). Activations are fvcore's: the
output elements of convolutions and linear layers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resnet_bench import presets
from resnet_bench.devices import (
    check_device,
    check_dtype,
    device_name,
    memory_format_name,
    resolve_channels_last,
    training_channels_last,
)
from resnet_bench.errors import check_positive_int
from resnet_bench.preset_costs import preset_costs
from resnet_bench.presets import resolve
from resnet_bench.spec import ResNetSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

NATIVE_INPUT_SIZE = {"imagenet": 224, "cifar": 32, "deep": 224, "deep_tiered": 224}

# fvcore op handles are grouped into these kinds; the headline counts the first two.
_HEADLINE_KINDS = ("conv", "linear")


@dataclass(frozen=True)
class StageCost:
    """Cost of one part of the network: the stem, a stage `layerN`, or the head."""

    name: str  # stem, layer1 ... layerN, head
    params: int  # trainable parameters
    gflops: float  # convolutions and linear layers, 1e9 multiply-adds
    activations: int  # output elements of convolutions and linear layers
    output_shape: tuple[int, ...]  # (channels, height, width) of this part's output; (classes,) for the head


@dataclass(frozen=True)
class Cost:
    """What a network costs at one input size, from one fvcore trace."""

    spec: str  # the spec's one-line form
    input_size: int  # height = width of the input, pixels
    in_channels: int  # channels of the input
    params: int  # trainable parameters, sum(p.numel())
    gflops: float  # convolutions + linear layers, 1e9 multiply-adds per image (torchvision's `_ops`)
    gflops_total: float  # everything fvcore counts (adds batch norm and adaptive pooling), per image
    activations: int  # output elements of convolutions and linear layers, per image
    stages: tuple[StageCost, ...]  # stem, each stage, head; they add up to the totals


@dataclass(frozen=True)
class Speed:
    """Measured speed of a network on one device; medians of `runs` timed runs after warm-up."""

    device: str  # cpu, or cuda:N with the GPU's name
    dtype: str  # float32, or the autocast dtype
    threads: int  # CPU threads torch uses (intra-op)
    memory_format: str  # channels_last or nchw
    batch_size: int  # images per batch for the throughput figures
    runs: int  # timed runs per figure
    latency_ms: float  # median inference time of one image (batch 1), milliseconds
    latency_iqr_ms: float  # interquartile range of those runs, milliseconds
    throughput: float  # inference images per second at batch_size (median run)
    train_throughput: float | None  # training images per second at batch_size (forward, backward, SGD step)
    peak_memory_mb: float | None  # peak CUDA memory allocated during the measurement, MiB (None on CPU)


@dataclass(frozen=True)
class Profile:
    """Cost and, when measured, speed of one model."""

    model: str  # the name or spec the user gave
    cost: Cost
    speed: Speed | None
    cost_source: str = "trace"  # trace: fvcore traced it now; table: the shipped preset table (no stages)

    def to_row(self) -> dict[str, Any]:
        """One flat row: the model, the cost without the per-stage breakdown, where the cost came from, the speed."""
        row: dict[str, Any] = {"model": self.model}
        row.update({k: v for k, v in dataclasses.asdict(self.cost).items() if k != "stages"})
        row["cost_source"] = self.cost_source
        if self.speed is not None:
            row.update(dataclasses.asdict(self.speed))
        return row

    def stage_rows(self) -> list[dict[str, Any]]:
        """One flat row per part of the network."""
        return [
            {"model": self.model, **{k: v for k, v in dataclasses.asdict(s).items() if k != "output_shape"},
             "output_shape": "x".join(map(str, s.output_shape))}
            for s in self.cost.stages
        ]


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the warnings and log records of fvcore and of torch's JIT tracer that it uses."""
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def native_input_size(spec: ResNetSpec) -> int:
    """The input size a spec's stem was designed for: 224 for imagenet, 32 for cifar."""
    return NATIVE_INPUT_SIZE[spec.stem]


def count_cost(model: ResNetSpec | str, input_size: int | None = None) -> Cost:
    """Parameters, FLOPs and activations of a model at an input size (default: its stem's native size)."""
    return _count_cost(*_line_and_size(model, input_size))


def _line_and_size(model: ResNetSpec | str, input_size: int | None) -> tuple[str, int]:
    """The spec's one-line form (the cache key of the counts) and the input size, its stem's when not given."""
    spec = resolve(model)
    return spec.format(), native_input_size(spec) if input_size is None else check_positive_int("input_size",
                                                                                                 input_size)


@functools.lru_cache(maxsize=1024)
def _count_cost(spec_line: str, input_size: int) -> Cost:
    # Cached by the spec's one-line form: a search proposes the same network many times.
    import torch

    from resnet_bench.models import build_model

    spec = ResNetSpec.parse(spec_line)
    model = build_model(spec).eval()
    x = torch.zeros(1, spec.in_channels, input_size, input_size)
    counts, shapes = _trace(model, x)

    def part(name: str, modules: tuple[str, ...]) -> StageCost:
        kinds: Counter = Counter()
        for m in modules:
            kinds.update(counts.get(m, Counter()))
        present = [getattr(model, m) for m in modules if getattr(model, m, None) is not None]
        return StageCost(
            name=name, params=sum(p.numel() for m in present for p in m.parameters()),
            gflops=_headline(kinds) / 1e9, activations=int(kinds["acts"]), output_shape=shapes[name],
        )

    stages = (
        part("stem", ("conv1", "bn1", "maxpool")),
        *(part(n, (n,)) for n in model.stage_names),
        part("head", ("final_bn", "avgpool", "fc")),
    )
    total = counts[""]
    return Cost(
        spec=spec_line, input_size=input_size, in_channels=spec.in_channels,
        params=sum(p.numel() for p in model.parameters()),
        gflops=_headline(total) / 1e9,
        gflops_total=sum(v for k, v in total.items() if k != "acts") / 1e9,
        activations=int(total["acts"]),
        stages=stages,
    )


@dataclass(frozen=True)
class Counts:
    """A network's size without its weights: the three figures the constraints of a study bound."""

    params: int  # trainable parameters
    gflops: float  # convolutions and linear layers, 1e9 multiply-adds per image (fvcore's headline convention)
    activations: int  # output elements of convolutions and linear layers, per image


def count_on_meta(model: ResNetSpec | str, input_size: int | None = None) -> Counts:
    """Parameters, FLOPs and activations without materialising a weight or tracing: the network is built on
    PyTorch's meta device (shapes, no storage) and run once with hooks on its convolutions and linear layers.

    Equal to `count_cost`'s figures (tests compare them on every preset); it takes milliseconds and no memory
    even for a network of billions of parameters, so the dry run and the sweep's constraint check use it.
    """
    return _count_on_meta(*_line_and_size(model, input_size))


@functools.lru_cache(maxsize=4096)
def _count_on_meta(spec_line: str, input_size: int) -> Counts:
    import torch
    from torch import nn

    from resnet_bench.models import ResNet

    spec = ResNetSpec.parse(spec_line)
    with torch.device("meta"):
        model = ResNet(spec).eval()
    macs = activations = 0

    def count(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        # fvcore: a convolution is out.numel() * in/groups * kh * kw multiply-adds, a linear layer
        # out.numel() * in_features; biases are not counted; activations are the outputs.
        nonlocal macs, activations
        if isinstance(module, nn.Conv2d):
            macs += output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
        else:
            macs += output.numel() * module.in_features
        activations += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.empty(1, spec.in_channels, input_size, input_size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return Counts(params=sum(p.numel() for p in model.parameters()), gflops=macs / 1e9, activations=activations)


def _headline(kinds: Counter) -> float:
    return float(sum(kinds[k] for k in _HEADLINE_KINDS))


def _trace(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, Counter], dict[str, tuple[int, ...]]]:
    """FLOPs by kind and activations per module, from a single fvcore trace; the output shape of each part."""
    import torch

    with quiet():
        from fvcore.nn import FlopCountAnalysis
        from fvcore.nn.activation_count import generic_activation_jit
        from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS as FLOP_HANDLES

        analysis = FlopCountAnalysis(model, x).clear_op_handles()
        analysis.set_op_handle(**{op: _combined(op, fn, generic_activation_jit()) for op, fn in FLOP_HANDLES.items()})
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        counts = analysis.by_module_and_operator()

    # Output shape of each part (stem, stages, head), from one more forward pass with hooks.
    shapes: dict[str, tuple[int, ...]] = {}
    parts = {"maxpool": "stem", **{n: n for n in model.stage_names}, "fc": "head"}
    hooks = [
        getattr(model, module).register_forward_hook(
            lambda _m, _i, out, part=part: shapes.__setitem__(part, tuple(out.shape[1:]))
        )
        for module, part in parts.items()
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return counts, shapes


# fvcore's op names, grouped: convolutions, linear layers (addmm/linear/matmul), everything else.
_KIND = {"aten::_convolution": "conv", "aten::addmm": "linear", "aten::linear": "linear", "aten::mm": "linear",
         "aten::matmul": "linear", "aten::bmm": "linear", "aten::einsum": "linear"}
_ACTIVATION_OPS = ("aten::_convolution", "aten::addmm", "aten::linear", "aten::bmm", "aten::einsum", "aten::matmul")


def _combined(op: str, flop_handle: Any, activation_handle: Any) -> Any:
    """One fvcore handle that returns FLOPs under the op's kind and, for fvcore's activation ops, activations."""
    kind = _KIND.get(op, op.removeprefix("aten::"))

    def handle(inputs: list, outputs: list) -> Counter:
        flops = flop_handle(inputs, outputs)
        out = Counter({kind: flops if isinstance(flops, (int, float)) else sum(flops.values())})
        if op in _ACTIVATION_OPS:
            acts = activation_handle(inputs, outputs)
            out["acts"] = acts if isinstance(acts, (int, float)) else sum(acts.values())
        return out

    return handle


# -- measured speed -----------------------------------------------------------------------------------

def measure_speed(
    model: ResNetSpec | str, *, input_size: int | None = None, device: str = "cpu", dtype: str = "float32",
    batch_size: int = 64, runs: int = 10, warmup: int = 3, train: bool = False, channels_last: bool | None = False,
) -> Speed:
    """Median inference latency at batch 1, inference throughput at batch_size, optionally training throughput.

    `dtype="auto"` and `channels_last=None` resolve as training does (devices.resolve_precision and
    resolve_channels_last); the defaults (float32, NCHW) keep latencies comparable with earlier releases."""
    import torch

    from resnet_bench.models import build_model

    spec = resolve(model)
    size = native_input_size(spec) if input_size is None else check_positive_int("input_size", input_size)
    device = check_device(device)
    dtype = check_dtype(dtype, device)
    check_positive_int("batch_size", batch_size)
    check_positive_int("runs", runs)
    cuda = device.startswith("cuda")
    net = build_model(spec)
    # As training does: NCHW where the CPU's channels_last kernel would crash (a training step is timed too).
    last = (training_channels_last(channels_last, net, device, dtype != "float32") if train
            else resolve_channels_last(channels_last))
    fmt = torch.channels_last if last else torch.contiguous_format
    net = net.to(device, memory_format=fmt)
    autocast = torch.autocast(device.split(":")[0], dtype=getattr(torch, dtype), enabled=dtype != "float32")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)

    def timed(step: Any, batch: int) -> list[float]:
        x = torch.randn(batch, spec.in_channels, size, size, device=device).contiguous(memory_format=fmt)  # timing only
        for _ in range(warmup):
            step(x)
        seconds = []
        for _ in range(runs):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step(x)
                end.record()
                end.synchronize()
                seconds.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                step(x)
                seconds.append(time.perf_counter() - t0)
        return seconds

    def infer(x: torch.Tensor) -> None:
        with torch.inference_mode(), autocast:
            net(x)

    net.eval()
    one = timed(infer, 1)
    many = timed(infer, batch_size)
    train_throughput = None
    if train:
        net.train()
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        labels = torch.zeros(batch_size, dtype=torch.long, device=device)

        def step(x: torch.Tensor) -> None:
            with autocast:
                loss = torch.nn.functional.cross_entropy(net(x), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        train_throughput = batch_size / statistics.median(timed(step, batch_size))
    q1, _, q3 = statistics.quantiles(one, n=4) if len(one) > 1 else (one[0], 0, one[0])
    return Speed(
        device=device_name(device), dtype=dtype, threads=torch.get_num_threads(),
        memory_format=memory_format_name(fmt == torch.channels_last), batch_size=batch_size, runs=runs,
        latency_ms=statistics.median(one) * 1e3, latency_iqr_ms=(q3 - q1) * 1e3,
        throughput=batch_size / statistics.median(many), train_throughput=train_throughput,
        peak_memory_mb=torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
    )


def profile(
    model: ResNetSpec | str, *, input_size: int | None = None, in_channels: int | None = None,
    speed: bool = False, device: str = "cpu", dtype: str = "float32", batch_size: int = 64, runs: int = 10,
    train: bool = False, stages: bool = True, channels_last: bool | None = False,
) -> Profile:
    """Cost of a model and, with speed=True, its measured latency and throughput.

    With stages=False, a preset named as such at its native input size and channels is answered from the shipped
    preset table (the same fvcore figures, without importing torch or tracing); anything else is traced.
    """
    spec = resolve(model)
    if in_channels is not None:
        spec = dataclasses.replace(spec, in_channels=in_channels)
    if speed:  # bad options fail before the trace
        check_dtype(dtype, check_device(device))
    name = model if isinstance(model, str) else spec.format()
    tabled = None if stages else _tabled_cost(name, spec, input_size)
    cost = tabled or count_cost(spec, input_size)
    measured = None
    if speed:
        measured = measure_speed(
            spec, input_size=cost.input_size, device=device, dtype=dtype, batch_size=batch_size, runs=runs,
            train=train, channels_last=channels_last,
        )
    return Profile(model=name, cost=cost, speed=measured, cost_source="table" if tabled else "trace")


def _tabled_cost(name: str, spec: ResNetSpec, input_size: int | None) -> Cost | None:
    """A preset's row of the shipped table as a Cost without stages, when it answers this request exactly."""
    if name not in presets.names() or spec != presets.get(name):  # an override or other channels: not the row
        return None
    row = preset_costs()[name]
    if input_size not in (None, row["input_size"]):
        return None
    return Cost(spec=spec.format(), input_size=row["input_size"], in_channels=spec.in_channels, params=row["params"],
                gflops=row["gflops"], gflops_total=row["gflops_total"], activations=row["activations"], stages=())
