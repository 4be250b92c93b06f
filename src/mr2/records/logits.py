"""A run's validation and test logits with their labels, kept beside its result
(``RUN_DIR/logits.npz``) so that anything fit after training (``mr2.posthoc``) is fit on
validation and scored on test without retraining.

The file holds ``{split}_logits`` (N, K) in float32 (the dtype the run scored in, so a
run's own per-class scores reproduce exactly from it) and ``{split}_labels`` (N,) int64 for
``split`` in val / test (either may be absent), the ``owner`` it belongs to (``owner_of``:
the run's method, seed and fingerprint, so a file copied into another run is refused), its
``schema`` version and a ``sha256`` of the arrays; ``load_logits`` checks all three (a
tampered, truncated or foreign file is a ``CorruptFileError`` naming it) and reads with
``allow_pickle=False``. Files of schema 1 (float16, no owner) still load. K = 1000 on 50,000
samples is 200 MB: the engine refuses a run whose logits would exceed
``train.logits_max_mb`` before it trains, unless ``train.keep_logits = false``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mr2.records.result import RunResult
from mr2.records.storage import CorruptFileError, save_arrays

FILE = "logits.npz"
SCHEMA = 2
READS = (1, 2)  # schema 1: float16 logits, no owner
SPLITS = ("val", "test")
HOW_TO_GET = (
    "runs trained by mr2 >= 0.2 keep them (train.keep_logits = true); record your own with "
    "record_run(..., logits=test_logits, val=(val_labels, val_logits))"
)


@dataclass(frozen=True)
class SplitLogits:
    """One split's logits (N, K) and labels (N,)."""

    logits: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        z, y = self.logits, self.labels
        if z.ndim != 2 or y.ndim != 1 or len(z) != len(y):
            raise ValueError(f"logits must be (N, K) and labels (N,), got {z.shape} and {y.shape}")

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])


@dataclass(frozen=True)
class RunLogits:
    val: SplitLogits | None
    test: SplitLogits | None


def size_mb(samples: int, num_classes: int) -> float:
    """The file's size in MB for ``samples`` rows of K float32 logits and their labels."""
    return samples * (4 * num_classes + 8) / 1e6


def owner_of(method: str, seed: int, fingerprint: str | None, extra: str = "") -> str:
    """The token a run's logits file carries: its method, seed and fingerprint (``extra``:
    which of a run's several models, e.g. a WiSE-FT alpha)."""
    body = json.dumps([method, int(seed), fingerprint, extra])
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def owner_of_result(result: RunResult, extra: str = "") -> str:
    """``owner_of`` the run ``result`` records."""
    return owner_of(result.method, result.seed, result.fingerprint, extra)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_logits(run_dir: str | Path, logits: RunLogits, owner: str) -> Path:
    """Write ``RUN_DIR/logits.npz`` atomically, float32, marked as ``owner``'s
    (``owner_of``)."""
    arrays: dict[str, np.ndarray] = {"owner": np.array(owner)}
    for split in SPLITS:
        part = getattr(logits, split)
        if part is not None:
            arrays[f"{split}_logits"] = np.asarray(part.logits, dtype=np.float32)
            arrays[f"{split}_labels"] = np.asarray(part.labels, dtype=np.int64)
    path = Path(run_dir) / FILE
    save_arrays({**arrays, "schema": np.array(SCHEMA), "sha256": np.array(_digest(arrays))}, path)
    return path


def has_logits(run_dir: str | Path) -> bool:
    return (Path(run_dir) / FILE).is_file()


def load_logits(run_dir: str | Path, owner: str | None = None) -> RunLogits:
    """The logits a run kept; ``FileNotFoundError`` saying how to get them when it kept
    none, ``CorruptFileError`` for a file that fails its schema or checksum, or (given
    ``owner``) that belongs to another run."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} kept no logits ({FILE}): {HOW_TO_GET}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptFileError(f"{path} cannot be read ({type(err).__name__}: {err})") from err
    schema, stored = arrays.pop("schema", None), arrays.pop("sha256", None)
    if schema is None or int(schema) not in READS:
        raise CorruptFileError(f"{path}: logits schema {schema}, this mr2 reads {READS}")
    if stored is None or str(stored) != _digest(arrays):
        raise CorruptFileError(f"{path} fails its checksum: the file was changed or is corrupt")
    kept_by = str(arrays.pop("owner")) if "owner" in arrays else None
    if owner is not None and kept_by is not None and kept_by != owner:
        raise CorruptFileError(
            f"{path} holds another run's logits (owner {kept_by}, this run is {owner}): it was "
            f"copied or moved here; delete it and rerun this run to keep its own"
        )
    return RunLogits(
        *(
            SplitLogits(arrays[f"{s}_logits"], arrays[f"{s}_labels"])
            if f"{s}_logits" in arrays
            else None
            for s in SPLITS
        )
    )
