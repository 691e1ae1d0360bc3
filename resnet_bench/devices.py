"""Device and dtype names: what this machine runs, checked in one place for every command.

torch is imported on first use, so that a command's argument checks cost nothing until it computes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resnet_bench.errors import BadInputError
from resnet_bench.recipe import PRECISIONS, RecipeError

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")  # auto: as training resolves precision=auto (resolve_precision)


def check_device(device: str) -> str:
    """A device string that this machine has: cpu, cuda or cuda:N (cuda is returned as cuda:0)."""
    import torch

    if device == "cpu":
        return device
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise BadInputError(f"device={device!r} is not available: this machine has no CUDA GPU; use device=cpu")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise BadInputError(
                f"device={device!r} is not available: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
        return f"cuda:{index}"
    raise BadInputError(f"device={device!r} is not accepted; use cpu, cuda or cuda:N")


def resolve_device(device: str | torch.device) -> torch.device:
    """auto (a GPU if there is one), cpu, cuda or cuda:N, checked against this machine."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(device))


def device_name(device: str | torch.device) -> str:
    """How results name the device they were measured on: cpu, or cuda:N with the GPU's model."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def check_dtype(dtype: str, device: str) -> str:
    """A dtype name that the device runs."""
    if dtype not in DTYPES:
        raise BadInputError(f"dtype={dtype!r} is not accepted; use one of: {', '.join(DTYPES)}")
    if dtype == "float16" and device == "cpu":
        raise BadInputError("dtype='float16' is not accepted on cpu; use float32 or bfloat16 there")
    if dtype == "auto":
        return "bfloat16" if resolve_precision("auto", device) == "bf16" else "float32"
    return dtype


# -- how a run computes: precision and memory format, resolved in one place for the trainer, profile and sweep --

MEMORY_FORMATS = ("auto", "channels_last", "nchw")


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """bf16 or fp32: `auto` is bf16 autocast on CUDA and on a CPU that multiplies bf16 natively
    (`cpu.native_bf16`: its flags, confirmed by a cached probe), fp32 on any other CPU, which bf16 would slow down."""
    import torch

    if precision not in PRECISIONS:
        raise BadInputError(f"precision={precision!r} is not accepted; use one of: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        return "bf16"
    from resnet_bench.cpu import native_bf16

    return "bf16" if native_bf16() else "fp32"


def resolve_channels_last(channels_last: bool | None) -> bool:
    """The memory format of a run: as given, else channels_last, the faster one on CUDA and on the CPU, where
    oneDNN trained every network and thread count of the CPU benchmark faster in it, in fp32 and in bf16
    (README, "CPU speed")."""
    return True if channels_last is None else channels_last


def training_channels_last(channels_last: bool | None, model: Any, device: Any, bf16: bool) -> bool:
    """The memory format that `model` trains in (resolve_channels_last), NCHW where the CPU's channels_last kernel
    would crash (channels_last_crash); asked for channels_last there, a RecipeError naming the convolution."""
    chosen = resolve_channels_last(channels_last)
    crash = channels_last_crash(model, device, bf16) if chosen else None
    if crash is None:
        return chosen
    if channels_last:
        raise RecipeError(
            f"recipe channels_last=true cannot train {crash!r} (a 1x1 convolution of stride 2 with "
            f"{model.get_submodule(crash).in_channels} input channels) in fp32 on the CPU: torch's kernel "
            "corrupts memory there; leave channels_last unset (auto: NCHW for such a network) or set it "
            "false (--memory-format auto or nchw)")
    return False


def channels_last_crash(model: Any, device: Any, bf16: bool) -> str | None:
    """The convolution of `model` that torch 2.14.1's CPU kernels cannot train in channels_last, or None.

    The weight gradient of a 1x1 convolution of stride 2 with fewer than 8 input channels, in fp32 and channels_last
    on the CPU, corrupts the heap (a bus error, a segfault or free()'s abort, at once or some steps later) on an
    AVX2 CPU (an AMD EPYC here; stride 1 or 3, 3x3 kernels, 8 input channels, bf16 and NCHW all train). Such a
    convolution is a projection shortcut into a stage narrower than 8 channels: small searched networks."""
    import torch

    if bf16 or torch.device(device).type != "cpu":
        return None
    for name, module in model.named_modules():
        if (isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1) and module.stride == (2, 2)
                and module.in_channels < 8):
            return name
    return None


def memory_format_name(channels_last: bool) -> str:
    """How records name a memory format: channels_last or nchw."""
    return "channels_last" if channels_last else "nchw"


def parse_memory_format(name: str) -> bool | None:
    """A --memory-format value as the recipe's channels_last field: auto None, channels_last True, nchw False."""
    if name not in MEMORY_FORMATS:
        raise BadInputError(f"memory format {name!r} is not accepted; use one of: {', '.join(MEMORY_FORMATS)}")
    return {"auto": None, "channels_last": True, "nchw": False}[name]
