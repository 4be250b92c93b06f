"""Arrays in a NumPy ``.npz``: keys x_train, y_train, x_test, y_test, or a single pool x, y
that is split into train / test here (stratified, seeded) and reported as such."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mr2.data.base import Dataset, Split, images_to_tensor, make_dataset, stratified_indices


def _tensor(x: np.ndarray) -> torch.Tensor:
    if x.dtype == np.uint8:
        return images_to_tensor(x)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _check_labels(path: Path, key: str, labels: np.ndarray) -> None:
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: {key} has dtype {labels.dtype}; labels must be integer class indices "
            "(a float label would be truncated). Save them with .astype(np.int64)"
        )


def load_npz(
    name: str = "npz",
    *,
    path: str = "",
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int = 0,
    test_fraction: float = 0.2,
    class_names: list[str] | None = None,
) -> Dataset:
    if not path:
        raise ValueError("the npz dataset needs a file: set data.path")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"npz file {p} does not exist")
    with np.load(p, allow_pickle=False) as data:
        keys = set(data.files)
        notes = [f"arrays from {p}"]
        if {"x_train", "y_train", "x_test", "y_test"} <= keys:
            x_tr, y_tr, x_te, y_te = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        elif {"x", "y"} <= keys:
            x, y = data["x"], data["y"]
            _check_labels(p, "labels y", y)
            rest, test_idx = stratified_indices(y, test_fraction, seed=10_000 + seed)
            x_tr, y_tr, x_te, y_te = x[rest], y[rest], x[test_idx], y[test_idx]
            notes.append(
                f"single pool split here: {test_fraction:.0%} of each class held out "
                f"as test (seed {10_000 + seed}), validation carved from the rest"
            )
        else:
            raise ValueError(f"{p} needs keys x_train/y_train/x_test/y_test or x/y, has {keys}")
    _check_labels(p, "y_train", y_tr)
    _check_labels(p, "y_test", y_te)
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    train = Split(_tensor(x_tr), torch.from_numpy(y_tr.astype(np.int64)))
    test = Split(_tensor(x_te), torch.from_numpy(y_te.astype(np.int64)))
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    return make_dataset(
        p.stem,
        train,
        test,
        num_classes,
        val_fraction=val_fraction,
        seed=seed,
        train_subset=train_subset,
        class_names=class_names,
        notes=notes,
    )
