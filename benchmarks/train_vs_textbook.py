"""Training images per second: our trainer against the textbook loop of the PyTorch CIFAR tutorials.

Same model (resnet20 for 1-channel input), same data (the training split of fashion-mnist-mini), same
batch size (128), one epoch each after one warm-up epoch, in one run:

- textbook: torchvision Dataset + DataLoader(num_workers=2, shuffle=True), PIL RandomCrop(28, padding=4)
  + RandomHorizontalFlip + ToTensor + Normalize per image, fp32, NCHW, SGD, PyTorch's default settings;
- ours: `resnet_bench.train.train` (the data set resident on the device, augmentation per batch there), with
  its defaults (precision and memory format `auto`: on a CPU with native bf16, bf16 autocast and channels_last),
  and again in fp32 NCHW, the previous release's CPU path.

    python benchmarks/train_vs_textbook.py [--device cpu] [--epochs 1] [--out result.json]
"""

from __future__ import annotations

import argparse

import torch
from common import emit, textbook_images_per_second

import resnet_bench as rb
from resnet_bench.cpu import use_threads
from resnet_bench.data import load_dataset, split
from resnet_bench.recipe import Recipe
from resnet_bench.train import spec_for_data, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    data = split(load_dataset("fashion-mnist-mini"), seed=0)
    spec = spec_for_data(rb.presets.get("resnet20"), data)

    torch.manual_seed(0)
    textbook = textbook_images_per_second(data, rb.build_model(spec), args.device, args.epochs)
    use_threads(None)
    runs = {}
    for name, forced in (("ours", {}), ("ours_fp32_nchw", {"precision": "fp32", "channels_last": False})):
        torch.manual_seed(0)
        recipe = Recipe(epochs=args.epochs + 1, batch_size=128, lr=0.1, weight_decay=5e-4, schedule="constant",
                        **forced)
        result = train(rb.build_model(spec), data, recipe, args.device)
        images = sum(len(data.train) // 128 * 128 for _ in result.history[1:])
        runs[name] = (images / sum(h.seconds for h in result.history[1:]), result)
    ours, result = runs["ours"]
    old = runs["ours_fp32_nchw"][0]
    figures = {
        "device": result.device, "threads": result.threads, "torch": result.torch_version, "model": "resnet20",
        "dataset": "fashion-mnist-mini train split (8,000 images)", "batch_size": 128, "epochs_timed": args.epochs,
        "precision": result.precision, "memory_format": result.memory_format,
        "textbook_images_per_second": round(textbook, 1), "ours_images_per_second": round(ours, 1),
        "ratio_ours_to_textbook": round(ours / textbook, 2), "ours_fp32_nchw_images_per_second": round(old, 1),
        "ratio_ours_fp32_nchw_to_textbook": round(old / textbook, 2),
    }
    print(f"textbook loop:   {textbook:8.1f} images/s")
    print(f"ours, fp32 nchw: {old:8.1f} images/s   ratio {old / textbook:.2f}x")
    print(f"ours:            {ours:8.1f} images/s   ratio {ours / textbook:.2f}x  ({result.device}, {result.threads} "
          f"threads, {result.precision}, {result.memory_format})")
    emit(figures, args.out)


if __name__ == "__main__":
    main()
