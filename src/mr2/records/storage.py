"""mr2's own files: atomic writes with the user's umask, and checkpoints that load without
unpickling arbitrary objects and carry a checksum verified on load.

Every write goes to a temporary file in the same folder (``NAME.<random>.tmp``), is fsynced
and renamed over the target, so a crash never leaves a half-written file and the previous
version stays until the new one is complete. ``.tmp`` files of a writer that was killed are
removed by ``remove_stale_tmp`` (the engine calls it under the run's lock).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKSUM_KEY = "_mr2_sha256"
# what helps when a run's checkpoint is corrupt (--overwrite only replaces runs of another
# configuration, so it does not)
RESTART = (
    "Start the run over with `mr2 train ... --no-resume` / `mr2 compare ... --no-resume` (or "
    "delete the file: the run then trains from the start), or use another --out"
)  # top-level key of every checkpoint mr2 writes


class CorruptFileError(ValueError):
    """A file mr2 wrote earlier fails its checksum or cannot be read back."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: Path, write) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {_why(err)}") from err
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; keep the user's umask
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {_why(err)}") from err
    except RuntimeError as err:  # torch.save's writer reports a failed write this way
        if "write" not in str(err).lower():
            raise
        full = shutil.disk_usage(path.parent).free < (1 << 20)
        code = errno.ENOSPC if full else errno.EIO
        why = _why(OSError(code, str(err).splitlines()[0]))
        raise OSError(code, f"cannot write {path}: {why}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _why(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "the disk is full; free space or choose another --out"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (read-only folder?); choose a writable --out"
    return err.strerror or str(err)


def remove_stale_tmp(folder: Path) -> list[Path]:
    """Delete ``*.tmp`` files a killed writer left in ``folder`` (not recursive); only call
    it while holding the folder's lock, when no writer of this folder can be running."""
    stale = sorted(Path(folder).glob("*.*.tmp")) if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def tensor_digest(obj: Any) -> str:
    """SHA-256 of a nest of dicts / lists / tuples of tensors and plain values, covering
    keys, order, dtypes, shapes and every byte of every tensor."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content, hashed once per (path, size, modification time)."""
    st = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def path_sha256(path: str | Path) -> str:
    """``file_sha256`` of a file; of a folder, the sha256 of its files' relative names,
    sizes and modification times (a changed, added or removed file changes it)."""
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    digest = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        st = f.stat()
        digest.update(f"{f.relative_to(p).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def save_torch(obj: dict[str, Any], path: Path) -> None:
    """Atomic ``torch.save`` of a dict, with its checksum under ``CHECKSUM_KEY``."""
    if not isinstance(obj, dict):
        raise TypeError("save_torch stores a dict (a checksum is added as a key)")
    _atomic(path, lambda fh: torch.save({**obj, CHECKSUM_KEY: tensor_digest(obj)}, fh))


def load_torch(path: Path) -> dict[str, Any]:
    """Load a file ``save_torch`` wrote: ``weights_only=True`` (tensors, containers and plain
    values only, never arbitrary objects) and the checksum verified. Any failure is a
    ``CorruptFileError`` naming the file; nothing is deleted."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # unpickling errors, zip errors, refused globals
        raise CorruptFileError(
            f"{path} cannot be read as an mr2 checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); it is corrupt or was not "
            f"written by mr2. {RESTART}"
        ) from err
    if not isinstance(obj, dict) or CHECKSUM_KEY not in obj:
        raise CorruptFileError(
            f"{path} carries no mr2 checksum (written by another program or an older mr2). "
            f"{RESTART}"
        )
    stored = obj.pop(CHECKSUM_KEY)
    if tensor_digest(obj) != stored:
        raise CorruptFileError(f"{path} fails its checksum (the file is corrupt). {RESTART}")
    return obj


def save_json(obj: Any, path: Path) -> None:
    """Atomic JSON: objects indented, lists without objects inside on one line (a confusion
    matrix of K = 1000 is written by the C encoder, not a line per number)."""
    _atomic(path, lambda fh: fh.write(dumps(obj).encode()))


def dumps(obj: Any, level: int = 0) -> str:
    """``obj`` as JSON, indented by one space per level down to the lists of plain values."""
    if isinstance(obj, dict) and obj:
        pad = "\n" + " " * (level + 1)
        items = [f"{json.dumps(str(k))}: {dumps(v, level + 1)}" for k, v in obj.items()]
        return "{" + pad + ("," + pad).join(items) + "\n" + " " * level + "}"
    if isinstance(obj, (list, tuple)) and any(isinstance(v, dict) for v in obj):
        pad = "\n" + " " * (level + 1)
        return (
            "["
            + pad
            + ("," + pad).join(dumps(v, level + 1) for v in obj)
            + "\n"
            + " " * level
            + "]"
        )
    return json.dumps(obj, default=_jsonable)


def load_json(path: Path) -> Any:
    """A JSON file mr2 wrote, with a clear error naming it if it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(f"{path} is not valid JSON ({err}); it is corrupt") from err


def save_text(text: str, path: Path) -> None:
    _atomic(path, lambda fh: fh.write(text.encode()))


def save_arrays(arrays: dict[str, Any], path: Path) -> None:
    """Atomic, uncompressed ``np.savez`` of named arrays (read back with allow_pickle=False)."""
    _atomic(path, lambda fh: np.savez(fh, **arrays))


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"cannot serialise {type(x).__name__}")
