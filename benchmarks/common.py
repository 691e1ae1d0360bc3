"""What the benchmarks share: the textbook training loop they measure against, and how they report.

The textbook loop is that of the PyTorch CIFAR tutorials:
torchvision-style Dataset + DataLoader(num_workers=2, shuffle=True), PIL RandomCrop(padding=4) +
RandomHorizontalFlip + ToTensor + Normalize per image, fp32, NCHW, SGD with PyTorch's default settings.
Not a module of the package: the scripts beside it import it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from resnet_bench.data import ImageSet, Splits


class PilImages(Dataset):
    """One PIL image per item (grey or RGB), transformed per image in the loader's workers."""

    def __init__(self, images: ImageSet, transform: T.Compose) -> None:
        array = images.images.permute(0, 2, 3, 1).numpy()  # NHWC for PIL
        self.images = array[..., 0] if array.shape[-1] == 1 else array
        self.mode = "L" if array.shape[-1] == 1 else "RGB"
        self.labels, self.transform = images.labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i], mode=self.mode)), self.labels[i]


def textbook_loader(data: Splits, batch_size: int = 128) -> DataLoader:
    transform = T.Compose([T.RandomCrop(data.image_size, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(data.mean, data.std)])
    return DataLoader(PilImages(data.train, transform), batch_size=batch_size, shuffle=True, num_workers=2)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def textbook_images_per_second(data: Splits, model: torch.nn.Module, device: str, epochs: int,
                               batch_size: int = 128) -> float:
    """Training images per second of the textbook loop, after one warm-up epoch that is not counted."""
    loader = textbook_loader(data, batch_size)
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds, images = 0.0, 0
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        _sync(device)
        if epoch:
            seconds += time.perf_counter() - start
            images += len(data.train)
    return images / seconds


def textbook_pipeline_images_per_second(data: Splits, device: str, batch_size: int = 128) -> float:
    """The textbook data pipeline alone: one pass of the loader, batches copied to the device, no training."""
    loader = textbook_loader(data, batch_size)
    for _ in loader:  # warm-up: start the workers
        break
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
    _sync(device)
    return len(data.train) / (time.perf_counter() - start)


def emit(figures: dict[str, Any], out: str | None) -> None:
    """The figures as one JSON line on stdout, and as a JSON file where --out names one."""
    print(json.dumps(figures))
    if out:
        with open(out, "w") as f:
            json.dump(figures, f, indent=2)
