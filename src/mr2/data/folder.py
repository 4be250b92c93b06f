"""Image folders (the ImageNet layout): ROOT/{train,test}/<class>/<image>, decoded with
Pillow and resized to a square ``image_size``. Classes are the sorted folder names of
train/. Held as tensors, so meant for small and medium datasets (large ones belong to the
pre-trained backbone pipeline and its feature cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mr2.data.base import Dataset, Split, make_dataset

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _read_split(root: Path, classes: list[str], size: int) -> Split:
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("image folders need Pillow: pip install pillow") from err
    xs, ys = [], []
    for label, c in enumerate(classes):
        folder = root / c
        files = (
            sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
            if folder.is_dir()
            else []
        )
        for f in files:
            with Image.open(f) as im:
                xs.append(np.asarray(im.convert("RGB").resize((size, size)), dtype=np.uint8))
            ys.append(label)
    if not xs:
        raise ValueError(f"no images under {root}")
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().div_(255)
    return Split(x, torch.tensor(ys, dtype=torch.long))


def load_folder(
    name: str = "folder",
    *,
    path: str = "",
    image_size: int = 32,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int = 0,
) -> Dataset:
    root = Path(path)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise FileNotFoundError(f"image folder {root} needs train/ and test/ sub-folders")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    train = _read_split(root / "train", classes, image_size)
    test = _read_split(root / "test", classes, image_size)
    return make_dataset(
        root.name,
        train,
        test,
        len(classes),
        val_fraction=val_fraction,
        seed=seed,
        train_subset=train_subset,
        class_names=classes,
        notes=[f"image folder {root}, resized to {image_size}px"],
    )
