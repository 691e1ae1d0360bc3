"""The trainer: one function from (model, data, recipe, device) to metrics. It never imports Optuna.

Losses and accuracies accumulate on the device and are read once per epoch, so an epoch runs
without host synchronisation; a callback after each epoch may stop the run (early stopping).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_bench import __version__
from resnet_bench.data import DeviceBatches, ImageSet, Splits
from resnet_bench.errors import BadInputError

SCHEDULES = ("step", "cosine", "linear", "constant")
PRECISIONS = ("auto", "bf16", "fp32")
LR_REFERENCE_BATCH = 128  # `lr` is per 128 images of batch and scales linearly (Goyal et al. 2017, arXiv 1706.02677)


class RecipeError(BadInputError):
    """A recipe field outside what it accepts."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch."""


class TrainingOutOfMemory(RuntimeError):
    """The device ran out of memory while training; the message names the batch size."""


@dataclass(frozen=True)
class Recipe:
    """How a candidate is trained; defaults are He et al. 2015's CIFAR recipe (§4.2), shortened to 30 epochs."""

    epochs: int = 30  # passes over the training split
    batch_size: int = 128  # images per step
    lr: float = 0.1  # peak SGD learning rate per 128 images of batch; the step uses lr * batch_size / 128
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False  # Nesterov momentum
    weight_decay: float = 1e-4  # L2 on convolution and linear weights; never on BN parameters or biases
    warmup_epochs: float = 0.0  # linear warm-up from 0 to the peak learning rate, epochs
    schedule: str = "step"  # after warm-up: step (/10 at milestones), cosine or linear to 0, constant
    milestones: tuple[float, ...] = (0.5, 0.75)  # step schedule: fractions of training where lr is divided by 10
    label_smoothing: float = 0.0  # cross-entropy label smoothing (Szegedy et al. 2016)
    seed: int = 0  # shuffling, augmentation and dropout; the model's weights are the caller's
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; bf16; fp32
    channels_last: bool | None = None  # memory format; None: on CUDA only
    # torch.compile the training forward and backward. Every new architecture compiles anew: the first step's
    # time is reported as compile_seconds, apart from train_seconds (see README, "GPU speed").
    compile: bool = False

    def __post_init__(self) -> None:
        def bad(name: str, accepted: str) -> RecipeError:
            return RecipeError(f"recipe {name}={getattr(self, name)!r} is not accepted; {name} must be {accepted}")

        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "an integer >= 1")
        for name, low, high in (("lr", 0, math.inf), ("momentum", 0, 1), ("weight_decay", 0, math.inf),
                                ("warmup_epochs", 0, math.inf), ("label_smoothing", 0, 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise bad(name, f"a number in [{low}, {high}]")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"one of {', '.join(PRECISIONS)}")
        if not all(0 < m < 1 for m in self.milestones):
            raise bad("milestones", "fractions of training in (0, 1)")
        object.__setattr__(self, "milestones", tuple(self.milestones))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON types."""
        out = dataclasses.asdict(self)
        out["milestones"] = list(self.milestones)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """The recipe of a dict such as `to_dict` returns; unknown keys are errors."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise RecipeError(f"unknown recipe field {unknown[0]!r}; accepted: {', '.join(names)}")
        return cls(**{k: tuple(v) if k == "milestones" else v for k, v in data.items()})


RECIPES: dict[str, Recipe] = {
    # He et al. 2015 §4.2: lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, lr /10 at 50% and 75%
    # (32k and 48k of 64k iterations), 182 epochs of 45k images.
    "he2015": Recipe(epochs=182, batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="step"),
    # For search: a few epochs, short warm-up, then linear decay to zero (one-cycle), Nesterov, batch 64.
    "fast": Recipe(epochs=5, batch_size=64, lr=0.2, nesterov=True, weight_decay=5e-4, warmup_epochs=1.0,
                   schedule="linear", label_smoothing=0.0),
}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A named recipe, or a recipe as a JSON object (as a trial stores it), with fields overridden."""
    if name.lstrip().startswith("{"):
        try:
            base = Recipe.from_dict(json.loads(name))
        except (json.JSONDecodeError, TypeError) as exc:
            raise RecipeError(f"recipe {name!r} is not a JSON object of recipe fields: {exc}") from None
    elif name in RECIPES:
        base = RECIPES[name]
    else:
        raise RecipeError(f"recipe={name!r} is not accepted; use one of: {', '.join(RECIPES)}, or a JSON object")
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured."""

    epoch: int  # 1-based
    train_loss: float  # mean training loss of the epoch (augmented images, label smoothing included)
    train_error: float  # fraction of augmented training images misclassified during the epoch
    val_accuracy: float  # fraction of the validation split classified correctly after the epoch
    test_error: float | None  # fraction of the test set misclassified after the epoch, when asked for
    lr: float  # learning rate at the end of the epoch
    seconds: float  # training time of the epoch, evaluation excluded


@dataclass(frozen=True)
class TrainResult:
    """The metrics of one training run and what is needed to reproduce it."""

    history: tuple[EpochMetrics, ...]  # one entry per epoch run
    val_accuracy: float  # after the last epoch run; the only accuracy used for selection
    test_accuracy: float  # after the last epoch run; reported, never used for selection
    epochs: int  # epochs run (fewer than the recipe's when the callback stopped the run)
    stopped_early: bool  # the callback stopped the run
    resumed_from_epoch: int  # epochs restored from a saved training state (0: trained from scratch)
    train_seconds: float  # training time, evaluation excluded (and compilation: see compile_seconds)
    seconds: float  # wall time of the whole call
    images_per_second: float  # training images per second of training time
    device: str  # cpu, or cuda:N with the GPU's name
    threads: int  # CPU threads torch used
    torch_version: str
    resnet_bench_version: str
    recipe: Recipe = field(repr=False)
    compile_seconds: float = 0.0  # torch.compile's first step (compilation and that one step); 0 when not compiled

    def to_row(self) -> dict[str, Any]:
        """One flat row, without the per-epoch history."""
        row = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("history", "recipe")}
        row["recipe"] = self.recipe.to_dict()
        return row

    def history_rows(self) -> list[dict[str, Any]]:
        """One flat row per epoch."""
        return [dataclasses.asdict(m) for m in self.history]


EpochCallback = Callable[[int, EpochMetrics], bool | None]  # return True to stop training
BatchCallback = Callable[[int, int, int, torch.Tensor], None]  # epoch, step, steps per epoch, loss (on device)


def resolve_device(device: str) -> torch.device:
    """auto, cpu, cuda or cuda:N, checked against this machine."""
    from resnet_bench.profiling import check_device

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(device))


def train(
    model: nn.Module, data: Splits, recipe: Recipe, device: str | torch.device = "auto", *,
    callback: EpochCallback | None = None, on_batch: BatchCallback | None = None, test_curve: bool = False,
    state_path: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train a model on the training split; measure validation accuracy each epoch and test accuracy at the end.

    With `state_path`, the training state is written there after every epoch, and a run that finds a
    state there resumes after its last epoch: a killed run loses at most one epoch.
    """
    started = time.perf_counter()
    device = resolve_device(device) if isinstance(device, str) else device
    cuda = device.type == "cuda"
    channels_last = cuda if recipe.channels_last is None else recipe.channels_last
    bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and cuda)
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    torch.manual_seed(recipe.seed)  # dropout

    batches = DeviceBatches(
        data.train, batch_size=recipe.batch_size, device=device, mean=data.mean, std=data.std, train=True,
        seed=recipe.seed, channels_last=channels_last,
    )
    if len(batches) == 0:
        raise RecipeError(f"recipe batch_size={recipe.batch_size} is larger than the training split ({len(data.train)})")
    optimizer = _optimizer(model, recipe, cuda)
    steps = len(batches) * recipe.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(recipe, len(batches), steps))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    history: list[EpochMetrics] = []
    train_seconds, stopped, resumed, compile_seconds, untimed_images = 0.0, False, 0, 0.0, 0
    if state_path is not None and Path(state_path).is_file():
        resumed, train_seconds, history = _load_state(Path(state_path), recipe, model, optimizer, scheduler, batches)
    # The compiled module shares its parameters with `model`; evaluation runs the plain one (no recompilation
    # for eval mode and its batch size).
    forward = torch.compile(model) if recipe.compile else model
    for epoch in range(resumed + 1, recipe.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        wrong = torch.zeros((), device=device, dtype=torch.long)
        timer = _EpochTimer(device)
        try:
            for step, (x, y) in enumerate(batches):
                compiling = recipe.compile and epoch == resumed + 1 and step == 0
                if compiling:
                    t_compile = time.perf_counter()
                with autocast:
                    logits = forward(x)
                    loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                loss_sum += loss.detach() * len(y)
                wrong += (logits.argmax(1) != y).sum()
                if compiling:  # one sync, once per run: compilation is timed apart, the epoch's clock restarts
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    compile_seconds = time.perf_counter() - t_compile
                    untimed_images += len(y)
                    timer = _EpochTimer(device)
                if on_batch is not None:
                    on_batch(epoch, step + 1, len(batches), loss.detach())
            timer.stop()
            seen = len(batches) * recipe.batch_size
            train_loss, train_error = (loss_sum / seen).item(), wrong.item() / seen  # the epoch's one sync
        except torch.OutOfMemoryError:
            raise TrainingOutOfMemory(
                f"{device} ran out of memory in epoch {epoch} at batch size {recipe.batch_size}"
            ) from None
        seconds = timer.seconds()
        train_seconds += seconds
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"the training loss became {train_loss} in epoch {epoch} (lr {recipe.lr})")
        metrics = EpochMetrics(
            epoch=epoch, train_loss=train_loss, train_error=train_error,
            val_accuracy=accuracy(model, data.val, data, device, channels_last, bf16),
            test_error=1 - accuracy(model, data.test, data, device, channels_last, bf16) if test_curve else None,
            lr=scheduler.get_last_lr()[0], seconds=seconds,
        )
        history.append(metrics)
        if state_path is not None:
            _save_state(Path(state_path), recipe, model, optimizer, scheduler, batches, history, train_seconds)
        if callback is not None and callback(epoch, metrics):
            stopped = epoch < recipe.epochs
            break

    test_accuracy = accuracy(model, data.test, data, device, channels_last, bf16)
    return TrainResult(
        history=tuple(history), val_accuracy=history[-1].val_accuracy, test_accuracy=test_accuracy,
        epochs=len(history), stopped_early=stopped, resumed_from_epoch=resumed, train_seconds=train_seconds,
        seconds=time.perf_counter() - started,
        images_per_second=(len(history) * len(batches) * recipe.batch_size - untimed_images) / max(train_seconds, 1e-9),
        device=f"{device} ({torch.cuda.get_device_name(device)})" if cuda else "cpu",
        threads=torch.get_num_threads(), torch_version=str(torch.__version__), resnet_bench_version=__version__,
        recipe=recipe, compile_seconds=compile_seconds,
    )


class _EpochTimer:
    """An epoch's training time: CUDA events on a GPU (no host synchronisation inside the epoch), else the clock."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        self.t0 = time.perf_counter()
        self.t1 = self.t0

    def stop(self) -> None:
        if self.cuda:
            self.end.record()
        self.t1 = time.perf_counter()

    def seconds(self) -> float:
        """After stop() and a synchronisation (the epoch's .item())."""
        return self.start.elapsed_time(self.end) / 1000 if self.cuda else self.t1 - self.t0


def _save_state(
    path: Path, recipe: Recipe, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
    batches: DeviceBatches, history: list[EpochMetrics], train_seconds: float,
) -> None:
    """Everything a resumed run needs to continue exactly, written atomically (temporary file, then rename)."""
    state = {
        "recipe": recipe.to_dict(), "epoch": len(history), "train_seconds": train_seconds,
        "history": [dataclasses.asdict(m) for m in history], "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "batches_rng": batches.generator.get_state(), "torch_rng": torch.get_rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_state(
    path: Path, recipe: Recipe, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
    batches: DeviceBatches,
) -> tuple[int, float, list[EpochMetrics]]:
    state = torch.load(path, map_location=batches.device, weights_only=True)
    if Recipe.from_dict(state["recipe"]) != recipe:
        raise RecipeError(f"the training state in {path} was saved with another recipe; remove it to start over")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    batches.generator.set_state(state["batches_rng"].cpu() if batches.device.type == "cpu" else state["batches_rng"])
    torch.set_rng_state(state["torch_rng"].cpu())
    return state["epoch"], state["train_seconds"], [EpochMetrics(**m) for m in state["history"]]


@torch.no_grad()
def accuracy(
    model: nn.Module, images: ImageSet, data: Splits, device: torch.device, channels_last: bool = False,
    bf16: bool = False, batch_size: int = 1000,
) -> float:
    """Fraction of an image set that the model classifies correctly (eval mode, no augmentation)."""
    model.eval()
    correct = torch.zeros((), device=device, dtype=torch.long)
    batches = DeviceBatches(
        images, batch_size=batch_size, device=device, mean=data.mean, std=data.std, train=False,
        channels_last=channels_last,
    )
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for x, y in batches:
            correct += (model(x).argmax(1) == y).sum()
    return correct.item() / len(images)


def _optimizer(model: nn.Module, recipe: Recipe, cuda: bool) -> torch.optim.SGD:
    # Weight decay on conv and linear weights only: decaying BN scales and biases does not regularise
    # a network followed by BN (van Laarhoven 2017) and hurts with few epochs.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr * recipe.batch_size / LR_REFERENCE_BATCH, momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0, foreach=True if cuda else None,
    )


def _lr_factor(recipe: Recipe, steps_per_epoch: int, total: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate after `step` optimizer steps."""
    warmup = round(recipe.warmup_epochs * steps_per_epoch)
    milestones = [round(m * total) for m in recipe.milestones]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if recipe.schedule == "step":
            return 0.1 ** sum(step >= m for m in milestones)
        if recipe.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if recipe.schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


def spec_for_data(spec: Any, data: Any) -> Any:
    """The spec with the input channels and classes of a Dataset or Splits (Fashion-MNIST: 1 channel, 10 classes)."""
    return dataclasses.replace(spec, in_channels=data.in_channels, num_classes=data.num_classes)
