"""Datasets held as tensors, one loader per source, one registry: ``load(name, **options)``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from mr2._registry import keyword_options
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
from mr2.data.registry import LOADERS
from mr2.data.synthetic import gaussian_mixture, load_synthetic
from mr2.data.vision import VisionSource, register_vision

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
    check=lambda _name, options: jpeg_problems(**options),  # the checksum, before training
)
LOADERS.register("npz", partial(load_npz, "npz"), "arrays from a .npz file")
LOADERS.register("folder", partial(load_folder, "folder"), "an image folder per class")


def available() -> list[str]:
    return LOADERS.available()


def options(name: str) -> set[str]:
    """Keyword options the loader of ``name`` accepts."""
    return LOADERS.options(name)


def problems(name: str, **kwargs) -> list[str]:
    """What a dataset's own check finds wrong with its options (e.g. a file's checksum)
    before anything is loaded; [] for datasets without one."""
    check = LOADERS.entry(name).check
    return check(name, kwargs) if check else []


def load(name: str, **kwargs) -> Dataset:
    """Load dataset ``name`` with train / val (carved from train, seeded) / test splits."""
    return LOADERS.create(name, **kwargs)


def register(name: str, loader: Callable[..., Dataset], description: str = "") -> Callable:
    """Add the user's dataset ``name``: ``loader(*, val_fraction, seed, **options)`` returns
    a ``Dataset``. ``make_dataset`` builds one from a training and a test ``Split``,
    carving a stratified validation split of ``val_fraction`` from training with ``seed``
    (the engine passes ``data.val_fraction`` and ``data.split_seed``, and ``train_subset``,
    ``path`` or ``data_dir`` when the loader takes them); ``data.options`` are its other
    keyword arguments.

    Example:
        >>> import torch
        >>> def blobs(*, val_fraction=0.1, seed=0, n=40):
        ...     g = torch.Generator().manual_seed(0)
        ...     y = torch.arange(n) % 2
        ...     x = torch.randn(n, 2, generator=g) + 3 * y[:, None]
        ...     return make_dataset("blobs", Split(x, y), Split(x[:8], y[:8]), 2,
        ...                         val_fraction=val_fraction, seed=seed)
        >>> _ = register("doc_blobs", blobs)
        >>> len(load("doc_blobs", n=20, val_fraction=0.2).val)
        4
    """
    missing = {"val_fraction", "seed"} - keyword_options(loader, set())
    if missing:
        raise ValueError(
            f"dataset loader {name!r} must take {sorted(missing)} as keywords: the engine "
            "carves validation from the training split with them (make_dataset does it)"
        )
    return LOADERS.register(name, loader, description)


__all__ = [
    "LOADERS",
    "Dataset",
    "LazyImages",
    "MappedTensor",
    "Split",
    "VisionSource",
    "auto_augment",
    "available",
    "gaussian_mixture",
    "load",
    "make_dataset",
    "preprocessed",
    "random_crop_flip",
    "register",
    "register_vision",
    "stratified_indices",
]
