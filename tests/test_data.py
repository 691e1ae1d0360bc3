"""Data sets from their real files, the class-balanced validation split, and the device batch pipeline."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from resnet_bench import data as data_module
from resnet_bench.data import (
    CROP_PADDING, DataError, DeviceBatches, ImageSet, load_dataset, read_idx, split,
)

from .helpers import write_cifar


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("RESNET_BENCH_DATA", str(root))
    return root


def test_mini_is_a_balanced_real_subset_under_8_mb():
    mini = load_dataset("fashion-mnist-mini")
    assert mini.train.images.shape == (10_000, 1, 28, 28) and mini.test.images.shape == (2_000, 1, 28, 28)
    assert mini.train.images.dtype == torch.uint8
    assert mini.train.labels.bincount().tolist() == [1000] * 10 and mini.test.labels.bincount().tolist() == [200] * 10
    from importlib import resources

    size = resources.files("resnet_bench").joinpath("tables/fashion_mnist_mini.npz").read_bytes()
    assert len(size) < 8 * 2**20


def test_fashion_mnist_from_debian_package(empty_root):
    """CI installs Debian's dataset-fashion-mnist; with nothing under the data root, the loader reads its four idx
    .gz files from the package's folder."""
    assert not any(empty_root.iterdir())
    full = load_dataset("fashion-mnist")
    assert full.train.images.shape == (60_000, 1, 28, 28) and full.test.images.shape == (10_000, 1, 28, 28)
    assert full.train.labels.bincount().tolist() == [6000] * 10
    assert full.classes[0] == "T-shirt/top" and full.in_channels == 1 and full.image_size == 28
    # The bundled subset is made of real images: each mini test image is one of the full test images.
    mini = load_dataset("fashion-mnist-mini")
    flat = full.test.images.flatten(1)
    for i in (0, 777, 1999):
        matches = (flat == mini.test.images[i].flatten()).all(dim=1).nonzero().flatten()
        assert len(matches) >= 1 and full.test.labels[matches[0]] == mini.test.labels[i]


def test_fashion_mnist_under_the_data_root(empty_root, monkeypatch):
    folder = empty_root / "fashion-mnist"
    folder.mkdir()
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7], dtype=np.uint8)
    for name, array, magic in (("train-images-idx3-ubyte.gz", images, 0x803),
                               ("t10k-images-idx3-ubyte.gz", images, 0x803),
                               ("train-labels-idx1-ubyte.gz", labels, 0x801),
                               ("t10k-labels-idx1-ubyte.gz", labels, 0x801)):
        header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
        (folder / name).write_bytes(gzip.compress(header + array.tobytes()))
    monkeypatch.setattr(data_module, "SYSTEM_FASHION_MNIST", empty_root / "nowhere")
    loaded = load_dataset("fashion-mnist")
    assert loaded.train.images.shape == (2, 1, 28, 28) and loaded.train.labels.tolist() == [3, 7]
    assert torch.equal(loaded.train.images[1, 0], torch.from_numpy(images[1]))


def test_missing_fashion_mnist_says_where_it_looked(empty_root, monkeypatch):
    monkeypatch.setattr(data_module, "SYSTEM_FASHION_MNIST", empty_root / "nowhere")
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert str(empty_root) in message and "nowhere" in message and "apt-get install dataset-fashion-mnist" in message


def test_read_idx_rejects_other_files():
    with pytest.raises(DataError, match="not an idx file"):
        read_idx(b"PK\x03\x04 not idx")
    assert read_idx(struct.pack(">I", 0x801) + struct.pack(">I", 3) + bytes([1, 2, 3])).tolist() == [1, 2, 3]


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_from_files_in_the_real_format(empty_root, name, classes):
    entries = write_cifar(empty_root, name, n_train=20, n_test=7, classes=classes)
    loaded = load_dataset(name)
    batches = 5 if name == "cifar10" else 1
    assert loaded.train.images.shape == (20 * batches, 3, 32, 32) and loaded.test.images.shape == (7, 3, 32, 32)
    assert loaded.num_classes == classes and loaded.classes[1] == "class1"
    # Row-major 3072 bytes = 1024 red, 1024 green, 1024 blue: pixel (r=0, c=1) of image 0.
    first = entries[0][b"data"][0]
    assert loaded.train.images[0, :, 0, 1].tolist() == [first[1], first[1025], first[2049]]


def test_missing_cifar_is_an_error_not_random_data(empty_root, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10")
    assert "cifar-10-batches-py" in str(info.value) and str(empty_root) in str(info.value)


def test_imagefolder_is_decoded_once_and_cached(empty_root, tmp_path):
    from PIL import Image

    folder = tmp_path / "pets"
    for part, n in (("train", 3), ("val", 2)):
        for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            (folder / part / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (40, 30), colour).save(folder / part / c / f"{i}.png")
    loaded = load_dataset(f"imagefolder:{folder}", image_size=16)
    assert loaded.train.images.shape == (6, 3, 16, 16) and loaded.test.images.shape == (4, 3, 16, 16)
    assert loaded.classes == ("cat", "dog") and loaded.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert loaded.train.images[0, :, 8, 8].tolist() == [255, 0, 0]
    cached = list((empty_root / "imagefolder-cache").glob("*.pt"))
    assert len(cached) == 1
    again = load_dataset(f"imagefolder:{folder}", image_size=16)
    assert torch.equal(again.train.images, loaded.train.images)
    assert list((empty_root / "imagefolder-cache").glob("*.pt")) == cached


def test_not_an_imagefolder(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="is not an image folder"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_unknown_dataset_lists_the_names():
    with pytest.raises(DataError) as info:
        load_dataset("mnist")
    assert "dataset='mnist'" in str(info.value) and "fashion-mnist-mini" in str(info.value)


def test_validation_split_is_balanced_disjoint_and_fixed_by_the_seed():
    mini = load_dataset("fashion-mnist-mini")
    a, b, c = split(mini, seed=0), split(mini, seed=0), split(mini, seed=1)
    assert len(a.val) == 2000 and len(a.train) == 8000 and a.val.labels.bincount().tolist() == [200] * 10
    assert torch.equal(a.val.images, b.val.images) and not torch.equal(a.val.images, c.val.images)
    train_rows = {bytes(x.flatten().numpy()) for x in a.train.images}
    assert not any(bytes(x.flatten().numpy()) in train_rows for x in a.val.images[:200])
    assert a.test is mini.test
    assert a.mean[0] == pytest.approx(0.286, abs=0.01) and a.std[0] == pytest.approx(0.353, abs=0.01)
    with pytest.raises(DataError, match="val_size=10000"):
        split(mini, val_size=10_000)


def _grid_images(n: int = 4, size: int = 6) -> ImageSet:
    images = torch.arange(n * size * size, dtype=torch.int64).remainder(251).to(torch.uint8).view(n, 1, size, size)
    return ImageSet(images, torch.arange(n))


def test_evaluation_batches_are_normalised_and_in_order():
    data = _grid_images()
    batches = DeviceBatches(data, batch_size=3, device="cpu", mean=(0.5,), std=(0.25,), train=False)
    out = list(batches)
    assert len(batches) == 2 and [len(y) for _, y in out] == [3, 1]
    torch.testing.assert_close(out[0][0], (data.images[:3].float() / 255 - 0.5) / 0.25)
    assert torch.cat([y for _, y in out]).tolist() == [0, 1, 2, 3]


def test_training_batches_are_random_crops_and_flips_of_each_image():
    data = _grid_images()
    batches = DeviceBatches(data, batch_size=4, device="cpu", mean=(0.0,), std=(1.0,), train=True, seed=3)
    padded = torch.nn.functional.pad(data.images, (CROP_PADDING,) * 4).float()
    seen_flip = seen_shift = False
    for _ in range(10):
        for x, y in batches:
            for image, label in zip(x * 255, y):
                image = image.round()  # back to the uint8 pixel values
                source = padded[label, 0]
                windows = source.unfold(0, 6, 1).unfold(1, 6, 1)  # every 6x6 window of the padded image
                plain = (windows == image[0]).flatten(2).all(-1)
                flipped = (windows == image[0].flip(-1)).flatten(2).all(-1)
                assert plain.any() or flipped.any()
                seen_flip |= bool(flipped.any() and not plain.any())
                seen_shift |= not bool(plain[CROP_PADDING, CROP_PADDING])
    assert seen_flip and seen_shift
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == [0, 1, 2, 3]  # each image once per pass


def test_training_batches_drop_the_last_partial_batch_and_follow_the_seed():
    data = _grid_images(n=10)
    one = DeviceBatches(data, batch_size=4, device="cpu", mean=(0.0,), std=(1.0,), train=True, seed=5)
    two = DeviceBatches(data, batch_size=4, device="cpu", mean=(0.0,), std=(1.0,), train=True, seed=5)
    assert len(one) == 2
    for (x1, y1), (x2, y2) in zip(one, two):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
