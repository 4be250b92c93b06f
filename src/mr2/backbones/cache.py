"""The feature cache behind linear probing: a backbone's features of one split, written once
to a memory-mapped ``.npy`` and reused by every later run with the same key.

The key is a SHA-256 of everything the features depend on: the backbone's description
(family, architecture, weights, a checksum of the encoder's weights, normalisation,
preprocessing) and the split's identity (the image files of its rows, or a checksum of
in-memory inputs, and of its labels). A changed backbone, preprocessing or split is a new
entry; nothing stale is read. Entries are written to a temporary folder and renamed, so an
interrupted extraction leaves no half-written entry. Under torch.distributed every process
extracts every W-th row into the same memory-mapped file (one node, or a shared file
system), so W GPUs extract W times faster and no process waits long at a barrier."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mr2 import distributed
from mr2.backbones.base import Backbone
from mr2.data.base import Split
from mr2.data.lazy import LazyImages, MappedTensor


def default_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "mr2" / "features"


def split_identity(split: Split) -> dict[str, Any]:
    """What the rows of a split are: their image files, or a checksum of their inputs."""
    h = hashlib.sha256()
    x = split.x
    if isinstance(x, LazyImages):
        kind = "files"
        for row in x.rows.tolist():
            h.update(x.paths[row].encode() + b"\0")
    else:
        kind = "tensor"
        base = x.x[torch.from_numpy(x.rows)] if isinstance(x, MappedTensor) else x
        base = base.detach().cpu().contiguous()
        h.update(str((tuple(base.shape), base.dtype)).encode())
        h.update(base.reshape(-1).view(torch.uint8).numpy().tobytes())
    labels = hashlib.sha256(split.y.numpy().astype(np.int64).tobytes()).hexdigest()
    return {
        "inputs": kind,
        "inputs_sha256": h.hexdigest(),
        "labels_sha256": labels,
        "n": len(split),
    }


def entry_meta(
    description: dict[str, Any], split: Split, name: str, amp_dtype: torch.dtype | None
) -> dict[str, Any]:
    precision = str(amp_dtype or torch.float32).replace("torch.", "")
    return {
        "backbone": description,
        "precision": precision,
        "split": {"name": name, **split_identity(split)},
    }


def entry_key(meta: dict[str, Any]) -> str:
    """The weights enter through the encoder's checksum, not their file's path, so a moved
    weights file (or cache) still matches."""
    keyed = {**meta, "backbone": {k: v for k, v in meta["backbone"].items() if k != "weights"}}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:24]


@torch.no_grad()
def _extract_into(
    model: Backbone,
    split: Split,
    rows: np.ndarray,
    out: np.ndarray,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> None:
    """Features of ``split``'s ``rows`` into the same rows of ``out``."""
    was_training = model.training
    model.eval()
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        x = split.x[chunk].to(device)
        with torch.autocast(
            device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
        ):
            f = model.features(x)
        out[chunk] = f.float().cpu().numpy()
    model.train(was_training)


def _extract_entry(
    model: Backbone,
    split: Split,
    folder: Path,
    meta: dict[str, Any],
    batch_size: int,
    dev: torch.device,
    amp_dtype: torch.dtype | None,
) -> None:
    """Extract the cache entry ``folder`` (every process its share of the rows) into a
    temporary folder, then move it in place (rank 0)."""
    rank, world = distributed.rank(), distributed.world_size()
    key = folder.name
    # one temporary folder shared by the processes, named after the first one's pid
    pid = torch.tensor([float(os.getpid()) if rank == 0 else 0.0], device=dev)
    tmp = folder.with_name(f"{key}.tmp-{int(distributed.all_reduce_sum(pid).item())}")
    shape = (len(split), model.feature_dim)
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.lib.format.open_memmap(tmp / "features.npy", "w+", np.float32, shape).flush()
    distributed.barrier()
    feats = np.lib.format.open_memmap(tmp / "features.npy", mode="r+")
    rows = np.arange(rank, len(split), world)  # each process extracts its share
    _extract_into(model, split, rows, feats, batch_size, dev, amp_dtype)
    feats.flush()
    del feats
    distributed.barrier()
    if rank == 0:
        np.save(tmp / "labels.npy", split.y.numpy().astype(np.int64))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    distributed.barrier()


def cached_features(
    model: Backbone,
    split: Split,
    name: str,
    *,
    cache_dir: str | Path = "",
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    description: dict[str, Any] | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """(features (N, D) float32 backed by the memory-mapped cache file, info) for ``split``,
    extracted with ``model.features`` (under ``amp_dtype`` autocast if given) unless a
    matching entry exists. ``description``: ``model.describe()`` if already computed (it
    checksums the weights). info: key, folder, whether it was reused, extraction seconds."""
    if not len(split):
        return torch.zeros(0, model.feature_dim), {"key": None, "reused": True, "seconds": 0.0}
    meta = entry_meta(description or model.describe(), split, name, amp_dtype)
    key = entry_key(meta)
    folder = Path(cache_dir or default_dir()) / key
    info: dict[str, Any] = {"key": key, "folder": str(folder), "reused": True, "seconds": 0.0}
    dev = torch.device(device)
    # the processes decide together: extract if any of them lacks a valid entry
    flag = torch.tensor([0.0 if _valid(folder, meta) else 1.0], device=dev)
    if float(distributed.all_reduce_sum(flag).item()) > 0:
        start = time.perf_counter()
        _extract_entry(model, split, folder, meta, batch_size, dev, amp_dtype)
        info.update(reused=False, seconds=time.perf_counter() - start)
    feats = np.load(folder / "features.npy", mmap_mode="c")  # copy-on-write: never writes back
    return torch.from_numpy(feats), info


def _valid(folder: Path, meta: dict[str, Any]) -> bool:
    try:
        stored = json.loads((folder / "meta.json").read_text())
        n = np.load(folder / "features.npy", mmap_mode="r").shape[0]
    except (OSError, ValueError):
        return False
    same = entry_key(stored) == entry_key(meta) if "backbone" in stored else False
    return same and n == meta["split"]["n"]


def load_entry(folder: str | Path) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """(features, labels, metadata) of one cache entry, e.g. for ``mr2 diagnose``."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"{folder} is not a feature-cache entry (no meta.json)")
    feats = torch.from_numpy(np.load(folder / "features.npy", mmap_mode="c"))
    labels = torch.from_numpy(np.load(folder / "labels.npy"))
    return feats, labels, json.loads((folder / "meta.json").read_text())
