"""``mr2 report --predictions FILE ...``: reports for people who only have prediction files.

Each file becomes one or more runs (``record_run``) under the report folder:

- ``.npz`` with ``y_true`` and ``y_pred`` (N,) or ``logits`` (N, K); optional ``method``
  and ``seed`` (scalars; default: the file name and 0), ``features`` (N, D),
  ``class_names`` (K,) and the validation split's ``val_y_true`` / ``val_logits`` (logits
  are kept beside the run for ``mr2 posthoc``);
- ``.csv`` with a header and columns ``y_true``, ``y_pred`` and optional ``method`` and
  ``seed`` (one run per (method, seed) pair; default: the file name and 0).
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mr2 import _checks
from mr2.report.own_loop import inferred_classes, record_run

Pending = tuple[str, int, dict[str, Any]]  # method, seed, record_run's other arguments


def _scalar(data: Any, key: str, path: Path) -> Any:
    value = data[key]
    if value.ndim != 0:
        raise ValueError(f"{path}: {key} must be one value, not an array of shape {value.shape}")
    return value.item()


def _npz(path: Path) -> list[Pending]:
    try:
        return _read_npz(path)
    except (OSError, EOFError, zipfile.BadZipFile) as err:  # truncated or not an .npz
        raise ValueError(f"{path} cannot be read as an .npz ({type(err).__name__}: {err})") from err


def _read_npz(path: Path) -> list[Pending]:
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        if "y_true" not in keys or not keys & {"y_pred", "logits"}:
            raise ValueError(f"{path} needs arrays y_true and y_pred or logits; has {sorted(keys)}")
        method = str(_scalar(data, "method", path)) if "method" in keys else path.stem
        seed = int(_scalar(data, "seed", path)) if "seed" in keys else 0
        run = {
            "y_true": data["y_true"],
            "y_pred": data["y_pred"] if "y_pred" in keys else None,
            "logits": data["logits"] if "y_pred" not in keys else None,
            "features": data["features"] if "features" in keys else None,
            "class_names": [str(c) for c in data["class_names"]] if "class_names" in keys else None,
            "val": (data["val_y_true"], data["val_logits"])
            if {"val_y_true", "val_logits"} <= keys
            else None,
        }
    return [(method, seed, run)]


def _csv(path: Path) -> list[Pending]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"y_true", "y_pred"} <= set(rows[0]):
        raise ValueError(f"{path} needs a header with columns y_true and y_pred")
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for i, row in enumerate(rows, 2):
        try:
            key = (row.get("method") or path.stem, int(row.get("seed") or 0))
            groups.setdefault(key, []).append({k: int(row[k]) for k in ("y_true", "y_pred")})
        except ValueError as err:
            raise ValueError(f"{path}, line {i}: labels and seed must be integers ({err})") from err
    try:
        k = inferred_classes(
            [r[c] for rows_ in groups.values() for r in rows_ for c in ("y_true", "y_pred")]
        )
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return [
        (
            method,
            seed,
            {
                "y_true": [r["y_true"] for r in members],
                "y_pred": [r["y_pred"] for r in members],
                "class_names": [str(c) for c in range(k)],
            },
        )
        for (method, seed), members in sorted(groups.items())
    ]


def record_predictions(files: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Record every prediction file as runs under ``out_dir``; their run directories. Every
    file is read and checked before any run is written; a (method, seed) found in two files
    is refused with both names."""
    pending: list[tuple[Path, Pending]] = []
    for f in map(Path, files):
        if not f.is_file():
            raise FileNotFoundError(f"prediction file {f} does not exist")
        reader = {".npz": _npz, ".csv": _csv}.get(f.suffix.lower())
        if reader is None:
            raise ValueError(f"{f}: prediction files are .npz or .csv")
        pending += [(f, run) for run in reader(f)]
    seen: dict[tuple[str, int], Path] = {}
    for f, (method, seed, _) in pending:
        if (problem := _checks.name_problem(method)) is not None or seed < 0:
            raise ValueError(f"{f}: {problem or f'seed must be >= 0, got {seed}'}")
        if (method, seed) in seen:
            raise ValueError(
                f"method {method!r} seed {seed} is in both {seen[method, seed]} and {f}: give "
                "each run once (set the method or seed column / array)"
            )
        seen[method, seed] = f
    runs = []
    for _, (method, seed, run) in pending:
        runs.append(Path(out_dir) / method / f"seed{seed}")
        record_run(runs[-1], method=method, seed=seed, **run)
    return runs
