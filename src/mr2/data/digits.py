"""scikit-learn's 8x8 digits (1,797 images, shipped with scikit-learn: no download)."""

from __future__ import annotations

import numpy as np
import torch

from mr2.data.base import Dataset, Split, make_dataset, stratified_indices


def load_digits(
    name: str = "digits",
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int = 0,
    test_fraction: float = 0.3,
) -> Dataset:
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as err:
        raise ImportError(
            "the digits dataset needs scikit-learn: pip install scikit-learn"
        ) from err
    bunch = sk_digits()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    rest, test_idx = stratified_indices(bunch.target, test_fraction, seed=10_000)
    return make_dataset(
        name,
        Split(x, y).subset(rest),
        Split(x, y).subset(test_idx),
        10,
        val_fraction=val_fraction,
        seed=seed,
        train_subset=train_subset,
        notes=[f"scikit-learn digits, {test_fraction:.0%} per class held out as test"],
    )
