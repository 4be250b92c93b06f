"""Gaussian mixture with per-class spread: the setting of MR²'s theory (wide classes are hard)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mr2.data.base import Dataset, Split, make_dataset


def gaussian_mixture(
    n_per_class: int,
    num_classes: int,
    dim: int,
    seed: int,
    spread: tuple[float, float] = (0.5, 2.5),
    radius: float = 3.0,
) -> Split:
    """Class means on a sphere of ``radius`` (fixed by a constant seed, so every split shares
    them); class k has isotropic standard deviation linearly between ``spread[0]`` and
    ``spread[1]``; samples drawn with ``seed``."""
    g = torch.Generator().manual_seed(1234)
    means = F.normalize(torch.randn(num_classes, dim, generator=g), dim=1) * radius
    sd = torch.linspace(spread[0], spread[1], num_classes)
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = means[y] + torch.randn(len(y), dim, generator=g) * sd[y].unsqueeze(1)
    return Split(x, y)


def load_synthetic(
    name: str = "synthetic",
    *,
    num_classes: int = 10,
    dim: int = 16,
    n_train: int = 500,
    n_test: int = 500,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int = 0,
) -> Dataset:
    train = gaussian_mixture(n_train, num_classes, dim, seed=100)
    test = gaussian_mixture(n_test, num_classes, dim, seed=200)
    return make_dataset(
        name,
        train,
        test,
        num_classes,
        val_fraction=val_fraction,
        seed=seed,
        train_subset=train_subset,
        notes=[f"Gaussian mixture, {num_classes} classes, dim {dim}"],
    )
