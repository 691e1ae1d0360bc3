"""What several test modules share: the command line run in-process, study files written to a folder."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from resnet_bench.cli import main

REPO = Path(__file__).resolve().parent.parent

TINY_STUDY = """
name = "tiny"
dataset = "fashion-mnist-mini"
seed = 0
val_size = 500
baselines = ["resnet20"]

[[objectives]]
metric = "val_accuracy"

[[objectives]]
metric = "params"

[space]
stages = 2
blocks = 1
stem = "cifar"
stem_width = [4, 8]
width_multiplier = [1, 64]
block = "basic"
shortcut = ["A", "B"]

[constraints]
max_params = 300000

[recipe]
name = "fast"
epochs = 1
batch_size = 256

[budget]
n_trials = 2

[sampler]
name = "random"
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    """Write a study file (or any text) into a folder."""
    path = tmp_path / name
    path.write_text(text)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`resnet-bench ARGV` in this process: exit code, stdout, stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def minimal_study() -> dict:
    """The smallest parsed study file that validates."""
    return {"name": "x", "dataset": "fashion-mnist-mini", "objectives": [{"metric": "val_accuracy"}]}


def toml_text(data: dict) -> str:
    """A small TOML writer for the tests' study files."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif key == "objectives":
            continue
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    for entry in data.get("objectives", []):
        lines.append("[[objectives]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    for key, table in tables:
        lines.append(f"[{key}]")
        for k, v in table.items():
            v = "{ " + ", ".join(f"{a} = {json.dumps(b)}" for a, b in v.items()) + " }" if isinstance(v, dict) \
                else json.dumps(v)
            lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


def write_cifar(root, name: str, n_train: int, n_test: int, classes: int):
    """Small files in CIFAR's real format: pickled dicts of bytes keys, as torchvision downloads them."""
    rng = np.random.default_rng(0)
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir()

    def dump(file, n, offset):
        entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 label_key: [(i + offset) % classes for i in range(n)], b"batch_label": file.encode()}
        with (folder / file).open("wb") as f:
            pickle.dump(entry, f)
        return entry

    if name == "cifar10":
        entries = [dump(f"data_batch_{i}", n_train, i) for i in range(1, 6)]
        dump("test_batch", n_test, 0)
        meta, names = "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(classes)]}
    else:
        entries = [dump("train", n_train, 0)]
        dump("test", n_test, 0)
        meta, names = "meta", {b"fine_label_names": [f"class{i}".encode() for i in range(classes)]}
    with (folder / meta).open("wb") as f:
        pickle.dump(names, f)
    return entries


def small_splits(train: int | None, val: int):
    """Real Fashion-MNIST images: the first `train` of the mini set's training split (None: all of it), `val`
    carved off to validate, and the mini test set. What each module's `small` fixture is made of."""
    import dataclasses

    import torch

    from resnet_bench.data import load_dataset, split

    data = split(load_dataset("fashion-mnist-mini"), val_size=val, seed=0)
    return data if train is None else dataclasses.replace(data, train=data.train.subset(torch.arange(train)))
