"""MNIST and Fashion-MNIST from the official IDX files (gzip or raw)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mr2.data.base import Dataset, Split, images_to_tensor, make_dataset
from mr2.data.files import locate

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

# Accepted MD5s per file: of the official .gz and of the decompressed IDX bytes (Debian's
# package ships recompressed .gz files whose content is identical).
SOURCES: dict[str, dict[str, Any]] = {
    "fashion_mnist": {
        "files": {
            "train-images-idx3-ubyte.gz": {
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            },
            "train-labels-idx1-ubyte.gz": {
                "25c81989df183df01b3e8a0aad5dffbe",
                "9018921c3c673c538a1fc5bad174d6f9",
            },
            "t10k-images-idx3-ubyte.gz": {
                "bef4ecab320f06d8554ea6380940ec79",
                "8181f5470baa50b63fa0f6fddb340f0a",
            },
            "t10k-labels-idx1-ubyte.gz": {
                "bb300cfdad3c16e7a12a480ee83cd310",
                "15d484375f8d13e6eb1aabb0c3f46965",
            },
        },
        "system": ["/usr/share/datasets/fashion-mnist"],
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",),
        "classes": FASHION_CLASSES,
    },
    "mnist": {
        "files": {
            "train-images-idx3-ubyte.gz": {"f68b3c2dcbeaaa9fbdd348bbdeb94873"},
            "train-labels-idx1-ubyte.gz": {"d53e105ee54ea40749a09fcbcd1e9432"},
            "t10k-images-idx3-ubyte.gz": {"9fb629c4189551a2d022fa330f9573f3"},
            "t10k-labels-idx1-ubyte.gz": {"ec29112dd5afa0611ce80d1b7f02629c"},
        },
        "system": ["/usr/share/datasets/mnist"],
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist",),
        "classes": [str(i) for i in range(10)],
    },
}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (magic 0x0000 08 NDIM, big-endian int32 sizes, uint8 data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims.tolist()} but holds {body.size} values")
    return body.reshape(dims)


def load_idx(
    name: str,
    *,
    data_dir=None,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int = 0,
    allow_download: bool = True,
) -> Dataset:
    src = SOURCES[name]
    paths = locate(
        name,
        src["files"],
        data_dir=data_dir,
        system=src["system"],
        mirrors=src["mirrors"],
        allow_download=allow_download,
    )
    arrays = {f: read_idx(p) for f, p in paths.items()}
    x_train, y_train = arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"]
    x_test, y_test = arrays["t10k-images-idx3-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"]
    train = Split(images_to_tensor(x_train), torch.from_numpy(y_train.astype(np.int64)))
    test = Split(images_to_tensor(x_test), torch.from_numpy(y_test.astype(np.int64)))
    folder = sorted({str(p.parent) for p in paths.values()})
    return make_dataset(
        name,
        train,
        test,
        10,
        val_fraction=val_fraction,
        seed=seed,
        train_subset=train_subset,
        class_names=src["classes"],
        notes=[f"IDX files from {', '.join(folder)} (checksums verified)"],
    )
