"""Device and dtype names: what this machine runs, checked in one place for every command.

torch is imported on first use, so that a command's argument checks cost nothing until it computes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resnet_bench.errors import BadInputError

if TYPE_CHECKING:
    import torch

DTYPES = ("float32", "bfloat16", "float16")


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
    return dtype
