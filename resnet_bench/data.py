"""Data sets as uint8 tensors, the validation split, and the device-resident batch pipeline.

A data set is held whole as one uint8 NCHW tensor on the training device; augmentation (random crop
with zero padding, horizontal flip) and normalisation run there per batch, with no per-image Python
work and no worker processes. Nothing is ever replaced by random data: a missing data set is an
error that says where it was looked for and how to get it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnet_bench.dataset_names import DATASETS, IMAGEFOLDER, is_dataset_name
from resnet_bench.errors import BadInputError
from resnet_bench.files import atomic_path

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MINI_FILE = "fashion_mnist_mini.npz"
DEFAULT_VAL_SIZE = 2000  # images; a 95% interval on an accuracy near 90% is then about +-1.3 points
CROP_PADDING = 4  # pixels of zero padding for the random crop (He et al. 2015 §4.2)


class DataError(BadInputError):
    """A data set that is unknown, missing or malformed; the message says where it looked and what to do."""


@dataclass(frozen=True)
class ImageSet:
    """Labelled images held as uint8 NCHW."""

    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The images at these indices."""
        return ImageSet(self.images[index], self.labels[index])


class _ImageShape:
    """The shape of the images and the number of classes, read off the training images."""

    train: ImageSet
    classes: tuple[str, ...]

    @property
    def in_channels(self) -> int:
        """Channels of an image: 1 for grey, 3 for RGB."""
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        """Height (= width) of an image, pixels."""
        return int(self.train.images.shape[2])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


@dataclass(frozen=True)
class Dataset(_ImageShape):
    """A data set's training and test images and its class names."""

    name: str  # as the user names it: fashion-mnist, cifar10, imagefolder:PATH, ...
    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Splits(_ImageShape):
    """Training, validation (carved from the training set) and test images, with normalisation constants."""

    dataset_name: str  # the data set's name
    train: ImageSet  # what the network learns from
    val: ImageSet  # carved from the training set; the only accuracy used for selection
    test: ImageSet  # the data set's test set: measured for the report, never used for selection
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of the training images, in [0, 1] units
    std: tuple[float, ...]  # per channel, of the training images, in [0, 1] units
    val_size: int  # images in the validation split
    seed: int  # the seed that chose the validation split


def data_root() -> Path:
    """The data root: RESNET_BENCH_DATA, default ~/.cache/resnet-bench."""
    return Path(os.environ.get("RESNET_BENCH_DATA") or Path.home() / ".cache" / "resnet-bench").expanduser()


# -- loading -------------------------------------------------------------------------------------------

def load_dataset(name: str, *, image_size: int = 32) -> Dataset:
    """The data set of a name (see DATASETS); image_size applies to imagefolder only."""
    if name == "fashion-mnist":
        return _fashion_mnist()
    if name == "fashion-mnist-mini":
        return _fashion_mnist_mini()
    if name in ("cifar10", "cifar100"):
        return _cifar(name)
    if is_dataset_name(name):  # the only name left: imagefolder:PATH
        return _imagefolder(name, image_size)
    raise DataError(f"dataset={name!r} is not accepted; use one of: {', '.join(DATASETS)}")


def read_idx(data: bytes) -> np.ndarray:
    """The array in an idx file (the format of MNIST and Fashion-MNIST), uncompressed bytes."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError("not an idx file of unsigned bytes (magic number 0x0000080N)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"idx file holds {body.size} bytes for shape {shape}")
    return body.reshape(shape).copy()  # writable, as torch.from_numpy wants


def _fashion_mnist() -> Dataset:
    places = [data_root() / "fashion-mnist", data_root(), SYSTEM_FASHION_MNIST]
    for place in places:
        if all((place / f).is_file() for f in FASHION_MNIST_FILES.values()):
            arrays = {k: read_idx(gzip.decompress((place / f).read_bytes())) for k, f in FASHION_MNIST_FILES.items()}
            return Dataset(
                "fashion-mnist",
                ImageSet(_nchw(arrays["train_images"]), torch.from_numpy(arrays["train_labels"].astype(np.int64))),
                ImageSet(_nchw(arrays["test_images"]), torch.from_numpy(arrays["test_labels"].astype(np.int64))),
                FASHION_MNIST_CLASSES,
            )
    looked = ", ".join(str(p) for p in places)
    raise DataError(
        f"dataset 'fashion-mnist' not found: looked for its four idx .gz files in {looked}; install Debian's "
        f"package (apt-get install dataset-fashion-mnist) or copy the files into {places[0]}"
    )


def _nchw(images: np.ndarray) -> torch.Tensor:
    """N x H x W grey images as N x 1 x H x W."""
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)


def _fashion_mnist_mini() -> Dataset:
    with resources.files("resnet_bench").joinpath(f"tables/{MINI_FILE}").open("rb") as f:
        arrays = dict(np.load(io.BytesIO(f.read())))
    return Dataset(
        "fashion-mnist-mini",
        ImageSet(_nchw(arrays["train_images"]), torch.from_numpy(arrays["train_labels"].astype(np.int64))),
        ImageSet(_nchw(arrays["test_images"]), torch.from_numpy(arrays["test_labels"].astype(np.int64))),
        FASHION_MNIST_CLASSES,
    )


_CIFAR = {
    # name: (folder, training files, test file, meta file, label key, class-name key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta",
                "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta", "fine_labels", "fine_label_names"),
}


def _cifar(name: str) -> Dataset:
    folder, train_files, test_file, meta_file, label_key, names_key = _CIFAR[name]
    base = data_root() / folder
    needed = [*train_files, test_file, meta_file]
    if not all((base / f).is_file() for f in needed):
        _download_cifar(name, base)

    def batch(file: str) -> tuple[np.ndarray, np.ndarray]:
        entry = _unpickle(base / file)
        try:
            images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            return images, np.asarray(entry[label_key], dtype=np.int64)
        except (KeyError, ValueError) as exc:
            raise DataError(f"{base / file} is not a {name} batch in torchvision's layout: {exc}") from None

    parts = [batch(f) for f in train_files]
    test_images, test_labels = batch(test_file)
    classes = tuple(_unpickle(base / meta_file)[names_key])
    return Dataset(
        name,
        ImageSet(torch.from_numpy(np.concatenate([p[0] for p in parts])),
                 torch.from_numpy(np.concatenate([p[1] for p in parts]))),
        ImageSet(torch.from_numpy(test_images), torch.from_numpy(test_labels)),
        tuple(c.decode() if isinstance(c, bytes) else str(c) for c in classes),
    )


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            entry = pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"{path} cannot be read as a CIFAR pickle: {exc}") from None
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in entry.items()}


def _download_cifar(name: str, base: Path) -> None:
    """Fetch a CIFAR set through torchvision; on failure, say where it was looked for and how to get it."""

    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        cls(str(base.parent), train=True, download=True)
    except Exception as exc:  # offline, refused, a broken archive: all mean the same to the user
        raise DataError(
            f"dataset {name!r} not found in {base} and the download through torchvision failed "
            f"({type(exc).__name__}); put torchvision's {base.name} folder under {base.parent} "
            "(RESNET_BENCH_DATA sets the data root)"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _imagefolder(name: str, image_size: int) -> Dataset:
    """torchvision's ImageFolder layout (train/ and val/ or test/), decoded once at image_size and cached."""
    root = Path(name.removeprefix(IMAGEFOLDER)).expanduser().resolve()
    train_dir = root / "train"
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DataError(
            f"{root} is not an image folder: it needs train/<class>/<image> and val/ or test/ beside it "
            "(torchvision's ImageFolder layout)"
        )
    stamp = f"{root}|{image_size}|" + "|".join(
        f"{p.relative_to(root)}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in sorted(root.rglob("*"))
        if p.is_file()
    )
    cache = data_root() / "imagefolder-cache" / f"{hashlib.sha256(stamp.encode()).hexdigest()[:24]}.pt"
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        return Dataset(name, ImageSet(*saved["train"]), ImageSet(*saved["test"]), tuple(saved["classes"]))

    train, classes = _decode_folder(train_dir, image_size, None)
    test, _ = _decode_folder(test_dir, image_size, classes)
    with atomic_path(cache) as tmp:  # never leave a half-written cache behind
        torch.save({"train": [train.images, train.labels], "test": [test.images, test.labels], "classes": classes},
                   tmp)
    return Dataset(name, train, test, tuple(classes))


def _decode_folder(folder: Path, size: int, classes: list[str] | None) -> tuple[ImageSet, list[str]]:
    import torchvision
    from PIL import Image

    try:
        found = torchvision.datasets.ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"{folder} is not an image folder: {exc}") from None
    if classes is not None and found.classes != classes:
        raise DataError(f"{folder} has classes {found.classes}, but train/ has {classes}")
    images = np.empty((len(found.samples), 3, size, size), dtype=np.uint8)
    for i, (path, _) in enumerate(found.samples):
        with Image.open(path) as image:
            image = image.convert("RGB")
            # Shorter side to `size`, then the central square, as torchvision's Resize + CenterCrop.
            scale = size / min(image.size)
            w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
            image = image.resize((w, h), Image.BILINEAR)
            left, top = (w - size) // 2, (h - size) // 2
            image = image.crop((left, top, left + size, top + size))
            images[i] = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    labels = torch.tensor([label for _, label in found.samples], dtype=torch.int64)
    return ImageSet(torch.from_numpy(images), labels), list(found.classes)


# -- the validation split --------------------------------------------------------------------------------

def study_splits(study: Any) -> Splits:
    """A study's data (its `dataset` at its `image_size`) and its validation split (`val_size`, fixed by its `seed`):
    what every trial of the study, and every confirm run of it, is measured on."""
    return split(load_dataset(study.dataset, image_size=study.image_size), val_size=study.val_size, seed=study.seed)


def split(dataset: Dataset, *, val_size: int = DEFAULT_VAL_SIZE, seed: int = 0) -> Splits:
    """Carve a class-balanced validation split, fixed by the seed, from the training set."""
    n = len(dataset.train)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 1 <= val_size < n:
        raise DataError(f"val_size={val_size!r} is not accepted; it must be an integer in [1, {n - 1}] "
                        f"for {dataset.name}")
    generator = torch.Generator().manual_seed(seed)
    labels = dataset.train.labels
    per_class = [torch.nonzero(labels == c).flatten() for c in range(dataset.num_classes)]
    per_class = [idx[torch.randperm(len(idx), generator=generator)] for idx in per_class]
    # Each class gives val_size * its share of the training set, rounded; the remainder goes to the largest.
    shares = [len(idx) * val_size // n for idx in per_class]
    for c in sorted(range(len(shares)), key=lambda c: -len(per_class[c]))[: val_size - sum(shares)]:
        shares[c] += 1
    val_idx = torch.cat([idx[:k] for idx, k in zip(per_class, shares)])
    train_idx = torch.cat([idx[k:] for idx, k in zip(per_class, shares)])
    train = dataset.train.subset(train_idx.sort().values)
    pixels = train.images.float().div_(255)
    return Splits(
        dataset_name=dataset.name, train=train, val=dataset.train.subset(val_idx.sort().values), test=dataset.test,
        classes=dataset.classes,
        mean=tuple(pixels.mean(dim=(0, 2, 3)).tolist()), std=tuple(pixels.std(dim=(0, 2, 3)).tolist()),
        val_size=val_size, seed=seed,
    )


# -- the device-resident batch pipeline -----------------------------------------------------------------

class DeviceBatches:
    """Normalised batches of an image set held on one device; shuffled and augmented there when training."""

    def __init__(
        self, data: ImageSet, *, batch_size: int, device: torch.device | str, mean: tuple[float, ...],
        std: tuple[float, ...], train: bool, seed: int = 0, channels_last: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.train = train
        self.channels_last = channels_last
        images = data.images.to(self.device, non_blocking=True)
        if train:  # padded once, so that each batch's random crop is a gather
            images = torch.nn.functional.pad(images, (CROP_PADDING,) * 4)
        self.images = images
        self.labels = data.labels.to(self.device, non_blocking=True)
        self.size = int(data.images.shape[2])
        shape = (1, -1, 1, 1)
        # uint8 -> [0, 1] -> standardised, as one multiply-add per pixel.
        self.scale = (1 / (255 * torch.tensor(std, device=self.device))).view(shape)
        self.shift = (-torch.tensor(mean, device=self.device) / torch.tensor(std, device=self.device)).view(shape)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        """Batches per pass; training drops the last partial batch, evaluation keeps it."""
        n = len(self.labels)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = (torch.randperm(n, device=self.device, generator=self.generator) if self.train
                 else torch.arange(n, device=self.device))
        for b in range(len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            images = self._augment(self.images[index]) if self.train else self.images[index]
            x = images.float().mul_(self.scale).add_(self.shift)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[index]

    def _augment(self, padded: torch.Tensor) -> torch.Tensor:
        """A random crop of each padded image and a random horizontal flip, for the whole batch at once."""
        b, c, size = padded.shape[0], padded.shape[1], self.size
        offsets = torch.randint(0, 2 * CROP_PADDING + 1, (2, b), device=self.device, generator=self.generator)
        steps = torch.arange(size, device=self.device)
        rows = (offsets[0, :, None] + steps)[:, None, :, None]
        cols = (offsets[1, :, None] + steps)[:, None, None, :]
        flip = torch.rand(b, device=self.device, generator=self.generator) < 0.5
        cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
        batch = torch.arange(b, device=self.device)[:, None, None, None]
        channel = torch.arange(c, device=self.device)[None, :, None, None]
        return padded[batch, channel, rows, cols]


# -- the bundled subset -----------------------------------------------------------------------------------

def build_mini(out: Path, *, train_per_class: int = 1000, test_per_class: int = 200, seed: int = 0) -> None:
    """Write the bundled fashion-mnist-mini: a class-balanced random subset of the real Fashion-MNIST files."""
    full = _fashion_mnist()
    generator = torch.Generator().manual_seed(seed)

    def pick(images: ImageSet, per_class: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = []
        for c in range(len(FASHION_MNIST_CLASSES)):
            idx = torch.nonzero(images.labels == c).flatten()
            chosen.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
        index = torch.cat(chosen).sort().values
        return images.images[index, 0].numpy(), images.labels[index].numpy().astype(np.uint8)

    train_images, train_labels = pick(full.train, train_per_class)
    test_images, test_labels = pick(full.test, test_per_class)
    np.savez_compressed(
        out, train_images=train_images, train_labels=train_labels, test_images=test_images, test_labels=test_labels
    )


if __name__ == "__main__":
    # python -m resnet_bench.data: rebuild the bundled subset from the full Fashion-MNIST files.
    target = Path(__file__).parent / "tables" / MINI_FILE
    build_mini(target)
    print(f"wrote {target} ({target.stat().st_size / 2**20:.2f} MiB)")
