"""Images stored as JPEG bytes with offsets in a ``.npz`` (all of CIFAR-10 in 18 MB), decoded
once with Pillow and cached, checksummed, under the user's cache folder.

File layout (keys): ``train_jpeg`` (uint8, the JPEG files concatenated), ``train_offsets``
(int64, N + 1: image i is ``train_jpeg[off[i]:off[i + 1]]``), ``y_train`` (int64, N), and
the same three for ``test_``. The project's CIFAR-10 file is recognised by its sha256; its
decoded arrays are checked against the checksums its README publishes.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from pathlib import Path

import numpy as np
import torch

from mr2.data.base import Dataset, Split, images_to_tensor, make_dataset
from mr2.data.files import cache_dir, find_file, search_dirs
from mr2.records.storage import file_sha256, save_arrays

FILE = "cifar10_jpeg.npz"
# sha256 of the project's file -> sha256 of its decoded (train, test) arrays' raw bytes
# (Pillow with libjpeg-turbo; the checksums published with the file)
KNOWN = {
    "acea5a7208b78fd286a99d474aac403c5f6b5c5b44ae41ef8a91bdfbc46ac95d": (
        "bf3aabd52be912dae02a0435296c4dab5289524b57f55cd162dc4796935a611b",
        "5a6aa8185204d80b65d3dfb540696dadd5f10d185ded226a96665d3e0fc6259f",
    )
}
CIFAR10_SHA256 = next(iter(KNOWN))
CIFAR10_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
]  # fmt: skip
SPLITS = ("train", "test")


def _find(path: str, data_dir) -> Path:
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"cifar10_jpeg: data.path {path} does not exist")
        return Path(path)
    dirs = search_dirs("cifar10_jpeg", data_dir, [])
    found = find_file([FILE], dirs, set())  # its sha256 is checked by the caller
    if found is None:
        raise FileNotFoundError(
            f"cifar10_jpeg: {FILE} not found in {', '.join(map(str, dirs))}. It holds all of "
            "CIFAR-10 as JPEG bytes (layout in mr2.data.jpeg; write_jpeg_npz packs your own): "
            "pass --set data.path=FILE, --set data.data_dir=DIR or set MR2_DATA; with the "
            'official python batches use data.name = "cifar10" instead'
        )
    return found


def problems(path: str = "", sha256_of_file: str = CIFAR10_SHA256, **_: object) -> list[str]:
    """What is wrong with the configured file, without decoding it (checked before any run
    trains): a missing file, or one whose checksum is not the expected one."""
    if not path or not Path(path).is_file() or not sha256_of_file:
        return []  # no path: found at load time; a missing path is the engine's check
    found = file_sha256(path)
    if found != sha256_of_file:
        return [
            f"data.path {path} has sha256 {found[:16]}..., not the expected "
            f"{sha256_of_file[:16]}...: the file was altered or is another one. Restore it, "
            'or pass --set data.options.sha256_of_file="" to load a file of your own'
        ]
    return []


def _decode(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB from concatenated JPEG files."""
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow is in the data / vision extras
        raise ImportError("cifar10_jpeg decodes with Pillow: pip install 'mr2[data]'") from err
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(blob):
        raise ValueError("offsets must run from 0 to the byte count of the JPEG data")
    if np.any(np.diff(offsets) <= 0):
        raise ValueError("offsets must increase (every image at least one byte)")
    images = [
        np.asarray(Image.open(io.BytesIO(blob[a:b].tobytes())).convert("RGB"))
        for a, b in itertools.pairwise(offsets)
    ]
    if len({im.shape for im in images}) > 1:
        raise ValueError("the JPEG images differ in size; they must share one size")
    return np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every array's name and bytes (in name order), without copying them."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).data)
    return h.hexdigest()


def _read_source(path: Path, file_sha: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        missing = {f"{s}_{k}" for s in SPLITS for k in ("jpeg", "offsets")} - set(data.files)
        missing |= {f"y_{s}" for s in SPLITS} - set(data.files)
        if missing:
            raise ValueError(f"{path} lacks keys {sorted(missing)}: not a JPEG-bytes file")
        arrays: dict[str, np.ndarray] = {}
        for s in SPLITS:
            try:
                arrays[f"x_{s}"] = _decode(data[f"{s}_jpeg"], data[f"{s}_offsets"])
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}: {s} images do not decode ({err})") from err
            arrays[f"y_{s}"] = np.asarray(data[f"y_{s}"])
    for s, want in zip(SPLITS, KNOWN.get(file_sha, ()), strict=False):
        if hashlib.sha256(arrays[f"x_{s}"].tobytes()).hexdigest() != want:
            raise ValueError(
                f"{path}: decoded {s} images differ from the published checksum (another "
                "JPEG decoder than Pillow with libjpeg-turbo?); install Pillow >= 10"
            )
    return arrays


def _cached(path: Path, file_sha: str, use_cache: bool) -> tuple[dict[str, np.ndarray], str]:
    """Decoded arrays of ``path``: from the cache when its stored checksum still holds,
    else decoded and written there atomically."""
    cache = cache_dir("cifar10_jpeg") / f"decoded_{file_sha[:16]}.npz"
    if use_cache and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files if k != "sha256"}
                stored = str(data["sha256"])
            if _digest(arrays) == stored:
                return arrays, f"decoded images cached at {cache}"
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale: decoded again below and replaced
    arrays = _read_source(path, file_sha)
    if use_cache:
        save_arrays({"sha256": np.array(_digest(arrays)), **arrays}, cache)
    return arrays, "decoded with Pillow" + (f", cached at {cache}" if use_cache else "")


def load_cifar10_jpeg(
    name: str = "cifar10_jpeg",
    *,
    path: str = "",
    data_dir=None,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int = 0,
    sha256_of_file: str = CIFAR10_SHA256,
    class_names: list[str] | None = None,
    cache: bool = True,
) -> Dataset:
    """Train / validation (stratified, seeded, carved from train) / test from a JPEG-bytes
    file. ``sha256_of_file``: the file must have this checksum (default: the project's
    CIFAR-10 file, whose decoded images are then checked too); "" accepts any file."""
    p = _find(path, data_dir)
    file_sha = file_sha256(p)
    if sha256_of_file and file_sha != sha256_of_file:
        raise ValueError(
            f"{p} has sha256 {file_sha}, not {sha256_of_file}: the file was altered or is "
            "another one. Restore the original file, or pass "
            '--set data.options.sha256_of_file="" to load a file of your own'
        )
    arrays, origin = _cached(p, file_sha, cache)
    y_tr, y_te = arrays["y_train"], arrays["y_test"]
    for key, y in (("y_train", y_tr), ("y_test", y_te)):
        if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise ValueError(f"{p}: {key} must hold non-negative integer class indices")
    num_classes = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
    if class_names is None and num_classes == len(CIFAR10_NAMES):
        class_names = CIFAR10_NAMES
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    verified = "sha256 verified" if sha256_of_file else f"sha256 {file_sha[:16]}..., unverified"
    return make_dataset(
        name,
        Split(images_to_tensor(arrays["x_train"]), torch.from_numpy(y_tr.astype(np.int64))),
        Split(images_to_tensor(arrays["x_test"]), torch.from_numpy(y_te.astype(np.int64))),
        num_classes,
        val_fraction=val_fraction,
        seed=seed,
        train_subset=train_subset,
        class_names=class_names,
        notes=[f"JPEG bytes from {p} ({verified}); {origin}"],
    )


def write_jpeg_npz(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write images (N, H, W, 3) uint8 and labels per split in this layout: for tests, and for
    users packing their own images."""
    from PIL import Image

    arrays: dict[str, np.ndarray] = {}
    for s, (x, y) in splits.items():
        blobs = []
        for image in x:
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="JPEG", quality=75)
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        arrays[f"{s}_jpeg"] = np.concatenate(blobs) if blobs else np.zeros(0, np.uint8)
        arrays[f"{s}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
        arrays[f"y_{s}"] = np.asarray(y, np.int64)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
