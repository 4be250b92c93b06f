"""Datasets as tensors: a ``Split`` of inputs and labels, a ``Dataset`` of train / val /
test splits, and the seeded, stratified carving of validation data from training data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class Split:
    """x: (N, ...) float32 inputs (images as (N, C, H, W) in [0, 1]), or a lazy source from
    mr2.data.lazy that gives such batches when indexed; y: (N,) int64."""

    x: Any  # Tensor, LazyImages or MappedTensor
    y: Tensor

    def __post_init__(self) -> None:
        if len(self.x) != self.y.shape[0]:
            raise ValueError(f"x has {len(self.x)} rows but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: Tensor | np.ndarray) -> Split:
        idx = torch.as_tensor(idx, dtype=torch.long)
        x = self.x.subset(idx) if hasattr(self.x, "subset") else self.x[idx]
        return Split(x, self.y[idx])

    def map(self, fn) -> Split:
        """The same split with its inputs ``x`` replaced by ``fn(x)``."""
        return Split(fn(self.x), self.y)


@dataclass
class Dataset:
    """Train / validation / test splits. The test split is for the final evaluation only."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # provenance, e.g. where files came from
    features_of: dict | None = None  # inputs are this backbone's cached features (probing)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def stratified_indices(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (rest, held-out) with ``round(fraction * n_c)`` of every class
    held out (at least one when the class has two or more samples), chosen by ``seed``."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        k = round(fraction * len(members))
        if fraction > 0 and len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        held.append(members[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(y)), held_idx)
    return rest, held_idx


def make_dataset(
    name: str,
    train: Split,
    test: Split,
    num_classes: int,
    *,
    val_fraction: float,
    seed: int,
    train_subset: int = 0,
    class_names: list[str] | None = None,
    notes: list[str] | None = None,
) -> Dataset:
    """Carve a stratified validation split (``val_fraction`` of each class) from ``train``
    with ``seed``; optionally keep a stratified subset of ``train_subset`` training samples."""
    y = train.y.numpy()
    rest, val_idx = stratified_indices(y, val_fraction, seed)
    if train_subset and train_subset < len(rest):
        keep_fraction = train_subset / len(rest)
        _, keep = stratified_indices(y[rest], keep_fraction, seed + 1)
        rest = rest[keep]
    labels = torch.cat([train.y, test.y])
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{name}: labels outside [0, {num_classes})")
    return Dataset(
        name,
        train.subset(rest),
        train.subset(val_idx),
        test,
        num_classes,
        class_names or [str(i) for i in range(num_classes)],
        notes or [],
    )


def images_to_tensor(images: np.ndarray) -> Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"expected (N, H, W) or (N, H, W, C) images, got {images.shape}")
    images = np.ascontiguousarray(images)
    if not images.flags.writeable:  # e.g. read-only buffers from IDX files
        images = images.copy()
    return torch.from_numpy(images).float().div_(255)
