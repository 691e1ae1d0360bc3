"""Training images per second: our trainer against the textbook loop of the PyTorch CIFAR tutorials.

Same model (resnet20 for 1-channel input), same data (the training split of fashion-mnist-mini), same
batch size (128), one epoch each after one warm-up epoch, in one run:

- textbook: torchvision Dataset + DataLoader(num_workers=2, shuffle=True), PIL RandomCrop(28, padding=4)
  + RandomHorizontalFlip + ToTensor + Normalize per image, fp32, NCHW, SGD, PyTorch's default settings;
- ours: `resnet_bench.train.train` (the data set resident on the device, augmentation per batch there).

    python benchmarks/train_vs_textbook.py [--device cpu] [--epochs 1] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import resnet_bench as rb
from resnet_bench.data import ImageSet, Splits, load_dataset, split
from resnet_bench.train import Recipe, spec_for_data, train


class PilImages(Dataset):
    """A torchvision-style data set: one PIL image per item, transformed per image in the workers."""

    def __init__(self, images: ImageSet, transform: T.Compose) -> None:
        self.images, self.labels, self.transform = images.images[:, 0].numpy(), images.labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


def textbook_epoch_images_per_second(data: Splits, model: torch.nn.Module, device: str, epochs: int) -> float:
    transform = T.Compose([T.RandomCrop(28, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(data.mean, data.std)])
    loader = DataLoader(PilImages(data.train, transform), batch_size=128, shuffle=True, num_workers=2)
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds, images = 0.0, 0
    for epoch in range(epochs + 1):  # the first epoch warms up and is not counted
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if epoch:
            seconds += time.perf_counter() - start
            images += len(data.train)
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    data = split(load_dataset("fashion-mnist-mini"), seed=0)
    spec = spec_for_data(rb.presets.get("resnet20"), data)

    torch.manual_seed(0)
    textbook = textbook_epoch_images_per_second(data, rb.build_model(spec), args.device, args.epochs)
    torch.manual_seed(0)
    recipe = Recipe(epochs=args.epochs + 1, batch_size=128, lr=0.1, weight_decay=5e-4, schedule="constant")
    result = train(rb.build_model(spec), data, recipe, args.device)
    ours = sum(len(data.train) // 128 * 128 for _ in result.history[1:]) / sum(h.seconds for h in result.history[1:])
    figures = {
        "device": result.device, "threads": result.threads, "torch": result.torch_version, "model": "resnet20",
        "dataset": "fashion-mnist-mini train split (8,000 images)", "batch_size": 128, "epochs_timed": args.epochs,
        "textbook_images_per_second": round(textbook, 1), "ours_images_per_second": round(ours, 1),
        "ratio_ours_to_textbook": round(ours / textbook, 2),
    }
    print(f"textbook loop: {textbook:8.1f} images/s")
    print(f"ours:          {ours:8.1f} images/s   ratio {ours / textbook:.2f}x  ({result.device}, {result.threads} threads)")
    print(json.dumps(figures))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
