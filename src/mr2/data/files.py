"""Finding, verifying and (when the network allows) downloading dataset files.

Lookup order for a dataset's files: the ``data_dir`` passed in, ``$MR2_DATA``, system
folders (e.g. Debian's ``/usr/share/datasets/fashion-mnist``), then the user cache
``~/.cache/mr2/<name>``. A file is accepted when its MD5 matches a known checksum (of the
file, or of its gzip-decompressed content). Downloads go to the cache through a temporary
file that is renamed only after its checksum is verified.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path


def md5(path: Path, decompress: bool = False) -> str:
    h = hashlib.md5()
    opener = gzip.open if decompress else open
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified(path: Path, checksums: set[str]) -> bool:
    """True if no checksum is known, or the file (or its decompressed content) matches."""
    if not checksums:
        return True
    if md5(path) in checksums:
        return True
    if path.suffix != ".gz":
        return False
    try:
        return md5(path, decompress=True) in checksums
    except (OSError, EOFError):  # not a gzip file, or a truncated one: simply not verified
        return False


def search_dirs(name: str, data_dir: str | os.PathLike | None, system: list[str]) -> list[Path]:
    dirs = []
    if data_dir:
        dirs += [Path(data_dir), Path(data_dir) / name]
    if os.environ.get("MR2_DATA"):
        dirs += [Path(os.environ["MR2_DATA"]), Path(os.environ["MR2_DATA"]) / name]
    dirs += [Path(s) for s in system]
    dirs.append(cache_dir(name))
    return dirs


def cache_dir(name: str) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "mr2" / name


def find_file(names: list[str], dirs: list[Path], checksums: set[str]) -> Path | None:
    """First existing file among ``dirs`` x ``names`` that passes the checksum; a file that
    exists but fails it raises (a corrupt copy must not be used silently)."""
    for d in dirs:
        for n in names:
            p = d / n
            if p.is_file():
                if not verified(p, checksums):
                    raise ValueError(f"{p} does not match its known checksum; delete or replace it")
                return p
    return None


def download(url: str, dest: Path, checksums: set[str], timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it; raises ``RuntimeError`` with a
    clear message when the network is unavailable or the checksum does not match."""
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        if not verified(Path(tmp), checksums):
            raise RuntimeError(f"download of {url} has the wrong checksum")
        os.replace(tmp, dest)
        return dest
    except OSError as err:  # URLError is an OSError
        why = getattr(err, "reason", None) or err
        raise RuntimeError(f"could not download {url} ({why}; no network?)") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        for folder in created:  # a failed download leaves no empty folders behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


DATA_DIR_HINT = "pass --set data.data_dir=DIR"  # mr2 train / compare's flag (demo: --data-dir)


def locate(
    name: str,
    files: dict[str, set[str]],
    *,
    data_dir=None,
    system=(),
    mirrors: tuple[str, ...] = (),
    allow_download: bool = True,
) -> dict[str, Path]:
    """Find every file of a dataset (``files``: file name -> accepted MD5s; a name ending in
    .gz also matches its decompressed form), downloading missing ones from ``mirrors``."""
    dirs = search_dirs(name, data_dir, list(system))
    found: dict[str, Path] = {}
    for fname, sums in files.items():
        alts = [fname, fname[:-3]] if fname.endswith(".gz") else [fname]
        path = find_file(alts, dirs, sums)
        errors = []
        if path is None and allow_download:
            for mirror in mirrors:
                try:
                    path = download(mirror.rstrip("/") + "/" + fname, cache_dir(name) / fname, sums)
                    break
                except RuntimeError as err:
                    errors.append(str(err))
        if path is None:
            where = ", ".join(str(d) for d in dirs)
            why = f"; download failed: {errors[-1]}" if errors else ""
            raise FileNotFoundError(
                f"{name}: {fname} not found in {where}{why}. Put the file in one of these "
                f"folders, {DATA_DIR_HINT}, or set MR2_DATA."
            )
        found[fname] = path
    return found
