"""Where a run computes: device, precision and processes (joining torchrun's group)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mr2 import distributed
from mr2.engine.config import RunConfig


@dataclass
class Context:
    device: torch.device
    amp_dtype: torch.dtype | None
    world: int
    rank: int


def setup(cfg: RunConfig) -> Context:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    kind = cfg.train.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device = 'cuda' but no CUDA device is available")
    distributed.init_from_env(kind)
    device = (
        torch.device(kind, torch.cuda.current_device()) if kind == "cuda" else torch.device("cpu")
    )
    return Context(device, amp_dtype(cfg, kind), distributed.world_size(), distributed.rank())


AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def amp_dtype(cfg: RunConfig, kind: str) -> torch.dtype | None:
    """The autocast dtype of a run on device ``kind``; None without ``train.amp``."""
    if not cfg.train.amp:
        return None
    if cfg.train.amp_dtype == "auto":
        return torch.float16 if kind == "cuda" else torch.bfloat16
    return AMP_DTYPES[cfg.train.amp_dtype]


def device_context(kind: str = "cpu") -> Context:
    """One process on ``kind`` ("cpu", "cuda" or "auto": CUDA when available), full
    precision: what evaluating a saved run uses."""
    if kind not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {kind!r}")
    cuda = kind == "cuda" or (kind == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is available")
    return Context(torch.device("cuda" if cuda else "cpu"), None, 1, 0)


def cpu_context() -> Context:
    """One process on the CPU, full precision: for evaluating saved runs."""
    return Context(torch.device("cpu"), None, 1, 0)
