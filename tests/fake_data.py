"""Files in the official layouts that the tests write (random content): never in the
package, which only reads them."""

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from mr2.data.cifar import SOURCES


def write_fake_archive(path: Path, name: str, n_train: int, n_test: int, seed: int = 0) -> None:
    """A small archive in the official layout (random images), for the loaders."""
    src = SOURCES[name]
    rng = np.random.default_rng(seed)
    k = 10 if name == "cifar10" else 100
    label_names = [f"class{i}".encode() for i in range(k)]
    members: dict[str, dict[bytes, object]] = {src.meta[0]: {src.meta[1]: label_names}}
    per_train = np.array_split(np.arange(n_train), len(src.train))
    for m, idx in zip(src.train + src.test, [*per_train, np.arange(n_test)], strict=True):
        members[m] = {
            b"data": rng.integers(0, 256, (len(idx), 3072), dtype=np.uint8),
            src.labels: rng.integers(0, k, len(idx)).tolist(),
        }
    with tarfile.open(path, "w:gz") as tar:
        for m, obj in members.items():
            blob = pickle.dumps(obj)
            info = tarfile.TarInfo(f"{src.folder}/{m}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
