"""Datasets held as tensors, one loader per source, one registry: ``load(name, **options)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from mr2.data.augment import auto_augment, random_crop_flip
from mr2.data.base import Dataset, Split, make_dataset, stratified_indices
from mr2.data.cifar import load_cifar
from mr2.data.digits import load_digits
from mr2.data.folder import load_folder
from mr2.data.idx import load_idx
from mr2.data.lazy import LazyImages, MappedTensor, preprocessed
from mr2.data.npz import load_npz
from mr2.data.synthetic import gaussian_mixture, load_synthetic
from mr2.data.vision import SOURCES as VISION_SOURCES
from mr2.data.vision import load_vision

LOADERS: dict[str, Callable[..., Dataset]] = {
    "synthetic": load_synthetic,
    "digits": load_digits,
    "mnist": partial(load_idx, "mnist"),
    "fashion_mnist": partial(load_idx, "fashion_mnist"),
    "cifar10": partial(load_cifar, "cifar10"),
    "cifar100": partial(load_cifar, "cifar100"),
    "npz": load_npz,
    "folder": load_folder,
    **{name: load_vision for name in VISION_SOURCES},
}


def available() -> list[str]:
    return sorted(LOADERS)


def options(name: str) -> set[str]:
    """Keyword options the loader of ``name`` accepts."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available())}")
    fn = LOADERS[name]
    target = fn.func if isinstance(fn, partial) else fn
    return {
        p.name for p in inspect.signature(target).parameters.values() if p.kind == p.KEYWORD_ONLY
    }


def load(name: str, **kwargs) -> Dataset:
    """Load dataset ``name`` with train / val (carved from train, seeded) / test splits."""
    unknown = sorted(set(kwargs) - options(name))
    if unknown:
        raise ValueError(
            f"dataset {name!r} does not take option(s) {unknown}; accepted: {sorted(options(name))}"
        )
    fn = LOADERS[name]
    return fn(**kwargs) if isinstance(fn, partial) else fn(name, **kwargs)


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
