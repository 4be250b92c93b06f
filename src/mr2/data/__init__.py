"""Datasets held as tensors, one loader per source, one registry: ``load(name, **options)``."""

from __future__ import annotations

from functools import partial

from mr2._registry import Registry
from mr2.data.augment import auto_augment, random_crop_flip
from mr2.data.base import Dataset, Split, make_dataset, stratified_indices
from mr2.data.cifar import load_cifar
from mr2.data.digits import load_digits
from mr2.data.folder import load_folder
from mr2.data.idx import load_idx
from mr2.data.jpeg import load_cifar10_jpeg
from mr2.data.jpeg import problems as jpeg_problems
from mr2.data.lazy import LazyImages, MappedTensor, preprocessed
from mr2.data.npz import load_npz
from mr2.data.synthetic import gaussian_mixture, load_synthetic
from mr2.data.vision import SOURCES as VISION_SOURCES
from mr2.data.vision import load_vision

LOADERS = Registry("dataset", exclude=("name",))
LOADERS.register("synthetic", partial(load_synthetic, "synthetic"), "Gaussian mixture")
LOADERS.register("digits", partial(load_digits, "digits"), "scikit-learn's 8x8 digits")
LOADERS.register("mnist", partial(load_idx, "mnist"), "MNIST (IDX files)")
LOADERS.register("fashion_mnist", partial(load_idx, "fashion_mnist"), "Fashion-MNIST (IDX)")
LOADERS.register("cifar10", partial(load_cifar, "cifar10"), "CIFAR-10 (python batches)")
LOADERS.register("cifar100", partial(load_cifar, "cifar100"), "CIFAR-100 (python batches)")
LOADERS.register(
    "cifar10_jpeg",
    partial(load_cifar10_jpeg, "cifar10_jpeg"),
    "all of CIFAR-10 as JPEG bytes",
    problems=jpeg_problems,  # the file's checksum, checked before anything trains
)
LOADERS.register("npz", partial(load_npz, "npz"), "arrays from a .npz file")
LOADERS.register("folder", partial(load_folder, "folder"), "an image folder per class")
for _name in VISION_SOURCES:
    LOADERS.register(_name, partial(load_vision, _name), f"{_name} (torchvision layout)")


def available() -> list[str]:
    return LOADERS.available()


def options(name: str) -> set[str]:
    """Keyword options the loader of ``name`` accepts."""
    return LOADERS.options(name)


def problems(name: str, **kwargs) -> list[str]:
    """What a dataset's own check finds wrong with its options (e.g. a file's checksum)
    before anything is loaded; [] for datasets without one."""
    check = LOADERS.entry(name).extra.get("problems")
    return check(**kwargs) if check else []


def load(name: str, **kwargs) -> Dataset:
    """Load dataset ``name`` with train / val (carved from train, seeded) / test splits."""
    return LOADERS.create(name, **kwargs)


__all__ = [
    "LOADERS",
    "Dataset",
    "LazyImages",
    "MappedTensor",
    "Split",
    "auto_augment",
    "available",
    "gaussian_mixture",
    "load",
    "make_dataset",
    "preprocessed",
    "random_crop_flip",
    "stratified_indices",
]
