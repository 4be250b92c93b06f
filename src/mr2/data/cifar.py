"""CIFAR-10 / CIFAR-100 from the official "python version" archives (tar.gz or extracted)."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from mr2.data.base import Dataset, Split, images_to_tensor, make_dataset
from mr2.data.files import cache_dir, download, find_file, search_dirs


@dataclass(frozen=True)
class _Source:
    """One official CIFAR "python version" archive and the members it holds."""

    archive: str
    md5: set[str]
    members: dict[str, str]  # member -> MD5 (torchvision's list of the same files)
    folder: str
    train: list[str]
    test: list[str]
    meta: tuple[str, bytes]  # (member, key of the class names)
    labels: bytes
    url: str


SOURCES = {
    "cifar10": _Source(
        archive="cifar-10-python.tar.gz",
        md5={"c58f30108f718f92721af3b95e74349a"},
        members={
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        },
        folder="cifar-10-batches-py",
        train=[f"data_batch_{i}" for i in range(1, 6)],
        test=["test_batch"],
        meta=("batches.meta", b"label_names"),
        labels=b"labels",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": _Source(
        archive="cifar-100-python.tar.gz",
        md5={"eb9058c3a382ffc7106e4002c42a8d85"},
        members={
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
            "meta": "7973b15100ade9c7d40fb424638fde48",
        },
        folder="cifar-100-python",
        train=["train"],
        test=["test"],
        meta=("meta", b"fine_label_names"),
        labels=b"fine_labels",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}


def _reader(name: str, data_dir, allow_download: bool):
    """Return a function member-name -> unpickled dict, from an archive or a folder."""
    src = SOURCES[name]
    dirs = search_dirs(name, data_dir, [])
    for d in dirs:  # an extracted folder: each member checked against its own MD5
        folder = d / src.folder
        if (folder / src.test[0]).is_file():
            origin = f"folder {folder} (MD5 verified)"
            return partial(_read_member, folder, src.members), origin
    archive = find_file([src.archive], dirs, src.md5)
    if archive is None and allow_download:
        try:
            archive = download(src.url, cache_dir(name) / src.archive, src.md5)
        except RuntimeError as err:
            raise FileNotFoundError(
                f"{name}: {src.archive} not found in {', '.join(map(str, dirs))}; {err}"
            ) from err
    if archive is None:
        raise FileNotFoundError(f"{name}: {src.archive} not found in {', '.join(map(str, dirs))}")
    tar = tarfile.open(archive, "r:gz")

    def read(member: str) -> dict:
        fh = tar.extractfile(f"{src.folder}/{member}")
        if fh is None:
            raise ValueError(f"{archive} has no {member}")
        return _unpickle(fh.read())

    return read, f"archive {archive} (MD5 verified)"


def _read_member(folder: Path, checksums: dict[str, str], member: str) -> dict:
    blob = (folder / member).read_bytes()
    if hashlib.md5(blob).hexdigest() != checksums.get(member):
        raise ValueError(
            f"{folder / member} does not match the official file's MD5; delete the folder "
            "or replace it with the official CIFAR archive"
        )
    return _unpickle(blob)


class _ArraysOnly(pickle.Unpickler):
    """The official files hold dicts of bytes, lists and NumPy arrays: nothing else is
    rebuilt (no arbitrary callable runs), on top of the checksum."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR file refers to {module}.{name}: refused")
        return super().find_class(module, name)


def _unpickle(blob: bytes) -> dict:
    # The official archives are pickles; they are read only after the checksum matched.
    try:
        return _ArraysOnly(io.BytesIO(blob), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise ValueError(f"not an official CIFAR file: {err}") from err


def _stack(read, members: list[str], label_key: bytes) -> Split:
    parts = [read(m) for m in members]
    x = np.concatenate([np.asarray(p[b"data"], dtype=np.uint8) for p in parts])
    y = np.concatenate([np.asarray(p[label_key], dtype=np.int64) for p in parts])
    return Split(
        images_to_tensor(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), torch.from_numpy(y)
    )


def load_cifar(
    name: str,
    *,
    data_dir=None,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int = 0,
    allow_download: bool = True,
) -> Dataset:
    src = SOURCES[name]
    read, origin = _reader(name, data_dir, allow_download)
    meta_file, meta_key = src.meta
    names = [n.decode() for n in read(meta_file)[meta_key]]
    train = _stack(read, src.train, src.labels)
    test = _stack(read, src.test, src.labels)
    return make_dataset(
        name,
        train,
        test,
        len(names),
        val_fraction=val_fraction,
        seed=seed,
        train_subset=train_subset,
        class_names=names,
        notes=[origin],
    )
