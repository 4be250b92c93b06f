"""Atomic files: write to a temporary file in the same folder, fsync, then rename, so a
crash never leaves a half-written checkpoint or result behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_torch(obj: Any, path: Path) -> None:
    _atomic(path, lambda fh: torch.save(obj, fh))


def load_torch(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)


def save_json(obj: Any, path: Path) -> None:
    _atomic(path, lambda fh: fh.write(json.dumps(obj, indent=1, default=_jsonable).encode()))


def save_text(text: str, path: Path) -> None:
    _atomic(path, lambda fh: fh.write(text.encode()))


def _jsonable(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"cannot serialise {type(x).__name__}")
