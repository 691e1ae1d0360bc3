"""The names of the data sets, without loading any: the study file checks them without torch."""

from __future__ import annotations

DATASETS = ("fashion-mnist", "fashion-mnist-mini", "cifar10", "cifar100", "imagefolder:PATH")
IMAGEFOLDER = "imagefolder:"  # followed by the folder's path


def is_dataset_name(name: str) -> bool:
    """A name that `resnet_bench.data.load_dataset` accepts (whether the files are there is its concern)."""
    return name in DATASETS[:-1] or (name.startswith(IMAGEFOLDER) and len(name) > len(IMAGEFOLDER))
