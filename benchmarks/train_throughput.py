"""Training images per second on a GPU: the textbook loop, our trainer eager and our trainer compiled.

For each network, in one run:
  (a) textbook: the PyTorch tutorials' loop (benchmarks/common.py: DataLoader with PIL crop + flip,
      2 workers, fp32, NCHW, batch 128, PyTorch's default settings);
  (b) ours, eager: `resnet_bench.train.train` (data and augmentation on the device, bf16 autocast on CUDA,
      channels_last, foreach SGD, one host sync per epoch, CUDA-event timing), batch --batch-size with the
      learning rate scaled;
  (c) ours, compiled: the same with torch.compile; its compile seconds are reported apart.
Each figure is the mean over --epochs timed epochs after one warm-up epoch. Beside them: the achieved
fraction of the GPU's bf16 matrix-product rate (3 x forward multiply-adds x 2 FLOPs per image, over the
rate of a bf16 8192^3 matmul measured in the same run), the peak GPU memory, and the data pipeline's own
rate (batches made and augmented, no training) as a multiple of the training rate.

The images: CIFAR-10 cannot be brought to the machines this was written for, so the networks train on
Fashion-MNIST made into 32x32 RGB (zero-padded by 2 pixels, the grey channel repeated 3 times); throughput
does not depend on the pixels. The CIFAR-style ResNet-18 is torchvision's resnet18 with the 3x3/1 stem and
no max-pool (the stem of He et al. 2015's CIFAR networks).

    python benchmarks/train_throughput.py [--device cuda] [--epochs 2] [--batch-size 512] [--out throughput.json]
    python benchmarks/train_throughput.py --device cpu --models resnet20 --limit 2048 --epochs 1   # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import torch
from common import emit, textbook_images_per_second, textbook_pipeline_images_per_second

import resnet_bench as rb
from resnet_bench.data import DeviceBatches, ImageSet, Splits, load_dataset, split
from resnet_bench.profiling import count_cost
from resnet_bench.recipe import Recipe
from resnet_bench.train import spec_for_data, train

MODELS = {
    "resnet18-cifar": "block=basic,layers=2-2-2-2,stem=cifar,stem_width=64",
    "resnet20": "resnet20", "resnet56": "resnet56", "wrn16_8": "wrn16_8", "resnext29_8x64d": "resnext29_8x64d",
}


def rgb32(data: Splits) -> Splits:
    """Fashion-MNIST as 32x32 RGB: zero-padded by 2 pixels, the grey channel repeated."""
    def convert(images: ImageSet) -> ImageSet:
        padded = torch.nn.functional.pad(images.images, (2, 2, 2, 2))
        return ImageSet(padded.repeat(1, 3, 1, 1).contiguous(), images.labels)
    return dataclasses.replace(data, train=convert(data.train), val=convert(data.val), test=convert(data.test),
                               mean=data.mean * 3, std=data.std * 3)


def bf16_matmul_flops(device: str, n: int = 8192, runs: int = 20) -> float | None:
    """The measured rate of a bf16 n x n x n matrix product, FLOP/s (2 n^3 per product); None on a CPU."""
    if not device.startswith("cuda"):
        return None
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(runs):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * runs / (start.elapsed_time(end) / 1000)


def pipeline_images_per_second(data: Splits, device: str, batch_size: int) -> float:
    """Our data pipeline alone: one pass of shuffled, cropped, flipped, normalised batches on the device."""
    batches = DeviceBatches(data.train, batch_size=batch_size, device=device, mean=data.mean, std=data.std,
                            train=True, channels_last=device.startswith("cuda"))
    for _ in batches:  # warm-up
        break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    images = 0
    for x, _ in batches:
        images += len(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def ours(data: Splits, spec: rb.ResNetSpec, device: str, epochs: int, batch_size: int, compile: bool) -> dict:
    """Our trainer: images/s over the timed epochs (the first is a warm-up), compile seconds, peak memory."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    recipe = Recipe(epochs=epochs + 1, batch_size=batch_size, lr=0.1, schedule="constant", compile=compile)
    result = train(rb.build_model(spec), data, recipe, device)
    timed = result.history[1:]
    images = len(timed) * (len(data.train) // batch_size) * batch_size
    return {"images_per_second": images / sum(h.seconds for h in timed), "compile_seconds": result.compile_seconds,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None,
            "val_accuracy": result.val_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs, after one warm-up epoch (2)")
    parser.add_argument("--batch-size", type=int, default=512, help="ours; the textbook loop uses 128 (512)")
    parser.add_argument("--limit", type=int, help="train on the first N images only (smoke runs)")
    parser.add_argument("--no-textbook", action="store_true", help="skip (a), the slowest part")
    parser.add_argument("--no-compile", action="store_true", help="skip (c)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()

    data = rgb32(split(load_dataset("fashion-mnist"), seed=0))
    if args.limit:
        data = dataclasses.replace(data, train=data.train.subset(torch.arange(args.limit)))
    peak = bf16_matmul_flops(args.device)
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    pipeline = pipeline_images_per_second(data, args.device, args.batch_size)
    textbook_pipeline = None if args.no_textbook else textbook_pipeline_images_per_second(data, args.device)
    rows = []
    for name in args.models:
        spec = spec_for_data(rb.presets.resolve(MODELS[name]), data)
        flops_per_image = 3 * count_cost(spec, 32).gflops * 1e9 * 2  # forward + backward, 2 FLOPs a multiply-add
        row = {"model": name, "spec": spec.format(), "gflops_forward": count_cost(spec, 32).gflops}
        if not args.no_textbook:
            torch.manual_seed(0)
            row["textbook"] = textbook_images_per_second(data, rb.build_model(spec), args.device, args.epochs)
        eager = ours(data, spec, args.device, args.epochs, args.batch_size, compile=False)
        row.update({f"eager_{k}": v for k, v in eager.items()})
        if not args.no_compile:
            compiled = ours(data, spec, args.device, args.epochs, args.batch_size, compile=True)
            row.update({f"compiled_{k}": v for k, v in compiled.items()})
        best = max(row.get("compiled_images_per_second", 0), row["eager_images_per_second"])
        row["best_over_textbook"] = best / row["textbook"] if "textbook" in row else None
        row["bf16_fraction"] = best * flops_per_image / peak if peak else None
        row["pipeline_over_training"] = pipeline / best
        rows.append(row)
        print(f"{name:16s} textbook {row.get('textbook', float('nan')):9.0f}"
              f"  eager {row['eager_images_per_second']:9.0f}"
              f"  compiled {row.get('compiled_images_per_second', float('nan')):9.0f} img/s"
              f" (compile {row.get('compiled_compile_seconds', float('nan')):.1f} s)"
              f"  x{row['best_over_textbook'] or float('nan'):.1f} textbook"
              f"  {100 * (row['bf16_fraction'] or float('nan')):.1f}% of bf16"
              f"  peak {row['eager_peak_memory_gib'] or float('nan'):.1f} GiB"
              f"  pipeline x{row['pipeline_over_training']:.0f}", flush=True)
    figures = {
        "device": device_name, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "images": "Fashion-MNIST train split as 32x32 RGB (padded by 2, grey repeated to 3 channels)",
        "train_images": len(data.train), "batch_size_ours": args.batch_size, "batch_size_textbook": 128,
        "epochs_timed": args.epochs, "bf16_matmul_flops": peak, "pipeline_images_per_second": pipeline,
        "textbook_pipeline_images_per_second": textbook_pipeline, "models": rows,
    }
    emit(figures, args.out)


if __name__ == "__main__":
    main()
