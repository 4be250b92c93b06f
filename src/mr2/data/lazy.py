"""Inputs that are not held in memory as one tensor: image files decoded on demand
(``LazyImages``) and in-memory images mapped through a transform batch by batch
(``MappedTensor``). Both behave like the tensors the engine indexes: ``x[idx]`` gives a
float batch, ``len(x)``, ``x.shape``, ``x.subset(idx)``, ``x.split(n)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor


class _Rows:
    """Shared row bookkeeping: ``rows`` index the underlying source."""

    rows: np.ndarray

    def __getitem__(self, idx) -> Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.rows)

    def _select(self, idx) -> np.ndarray:
        idx = np.asarray(idx.cpu() if isinstance(idx, Tensor) else idx, dtype=np.int64)
        return self.rows[idx.reshape(-1)]

    @property
    def shape(self) -> tuple[int, ...]:
        if not len(self):
            raise ValueError("empty split: no input shape")
        return (len(self), *self[np.array([0])].shape[1:])

    def split(self, size: int) -> Iterator[Tensor]:
        for start in range(0, len(self), size):
            yield self[np.arange(start, min(start + size, len(self)))]


class LazyImages(_Rows):
    """Image files decoded with Pillow when indexed and passed through ``transform`` (a
    callable PIL image -> (C, H, W) tensor, e.g. a backbone's ``Preprocess.pil_transform()``);
    ``threads`` decode in parallel (Pillow releases the GIL while decoding)."""

    def __init__(
        self,
        paths: list[str],
        transform: Callable | None = None,
        *,
        rows: np.ndarray | None = None,
        threads: int = 8,
    ) -> None:
        self.paths = list(paths)
        self.rows = np.arange(len(self.paths)) if rows is None else np.asarray(rows)
        self.transform = transform
        self.threads = threads

    def subset(self, idx) -> LazyImages:
        return LazyImages(self.paths, self.transform, rows=self._select(idx), threads=self.threads)

    def with_transform(self, transform: Callable) -> LazyImages:
        return LazyImages(self.paths, transform, rows=self.rows, threads=self.threads)

    def _load(self, row: int) -> Tensor:
        from PIL import Image

        path = self.paths[row]
        if self.transform is None:
            raise ValueError(f"{path}: no preprocessing set for these images")
        try:
            with Image.open(path) as im:
                im.load()
                return self.transform(im)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"image file {path} is missing") from err

    def __getitem__(self, idx) -> Tensor:
        if self.transform is None:
            raise ValueError(
                "these images have no preprocessing yet: they are loaded for a pre-trained "
                "backbone, whose preprocessing is set when the model is built"
            )
        rows = self._select(idx)
        if self.threads > 1 and len(rows) > 1:
            with ThreadPoolExecutor(min(self.threads, len(rows))) as pool:
                images = list(pool.map(self._load, rows.tolist()))
        else:
            images = [self._load(r) for r in rows.tolist()]
        return torch.stack(images)


class MappedTensor(_Rows):
    """In-memory inputs mapped through ``fn`` (batch -> batch) when indexed, e.g. 28x28 grey
    images resized and normalised for a 224x224 RGB backbone without storing the result."""

    def __init__(self, x: Tensor, fn: Callable[[Tensor], Tensor], *, rows=None) -> None:
        self.x, self.fn = x, fn
        self.rows = np.arange(len(x)) if rows is None else np.asarray(rows)

    def subset(self, idx) -> MappedTensor:
        return MappedTensor(self.x, self.fn, rows=self._select(idx))

    def __getitem__(self, idx) -> Tensor:
        return self.fn(self.x[torch.from_numpy(self._select(idx))])


def preprocessed(dataset, preprocess):
    """``dataset`` with every split's inputs passed through a backbone's ``preprocess``
    (``pil_transform`` for image files, ``tensor_transform`` for in-memory images)."""
    import dataclasses

    def fit(x):
        if isinstance(x, LazyImages):
            return x.with_transform(preprocess.pil_transform())
        if isinstance(x, MappedTensor):
            raise ValueError("these inputs are already mapped through a preprocessing")
        return MappedTensor(x, preprocess.tensor_transform)

    return dataclasses.replace(
        dataset,
        train=dataset.train.map(fit),
        val=dataset.val.map(fit),
        test=dataset.test.map(fit),
        notes=[*dataset.notes, f"preprocessing: {preprocess}"],
    )
