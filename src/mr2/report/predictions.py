"""``mr2 report --predictions FILE ...``: reports for people who only have prediction files.

Each file becomes one or more runs (``record_run``) under the report folder:

- ``.npz`` with ``y_true`` and ``y_pred`` (N,) or ``logits`` (N, K); optional ``method``
  and ``seed`` (scalars; default: the file name and 0), ``features`` (N, D) and
  ``class_names`` (K,);
- ``.csv`` with a header and columns ``y_true``, ``y_pred`` and optional ``method`` and
  ``seed`` (one run per (method, seed) pair; default: the file name and 0).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mr2.report.record import record_run


def _npz(path: Path, out: Path) -> list[Path]:
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        if "y_true" not in keys or not keys & {"y_pred", "logits"}:
            raise ValueError(f"{path} needs arrays y_true and y_pred or logits; has {sorted(keys)}")
        method = str(data["method"]) if "method" in keys else path.stem
        seed = int(data["seed"]) if "seed" in keys else 0
        run = out / method / f"seed{seed}"
        record_run(
            run,
            method=method,
            seed=seed,
            y_true=data["y_true"],
            y_pred=data["y_pred"] if "y_pred" in keys else None,
            logits=data["logits"] if "y_pred" not in keys else None,
            features=data["features"] if "features" in keys else None,
            class_names=[str(c) for c in data["class_names"]] if "class_names" in keys else None,
        )
    return [run]


def _csv(path: Path, out: Path) -> list[Path]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"y_true", "y_pred"} <= set(rows[0]):
        raise ValueError(f"{path} needs a header with columns y_true and y_pred")
    groups: dict[tuple[str, int], list[dict]] = {}
    for i, row in enumerate(rows, 2):
        try:
            key = (row.get("method") or path.stem, int(row.get("seed") or 0))
            groups.setdefault(key, []).append({k: int(row[k]) for k in ("y_true", "y_pred")})
        except ValueError as err:
            raise ValueError(f"{path}, line {i}: labels and seed must be integers ({err})") from err
    k = 1 + max(max(r["y_true"], r["y_pred"]) for rows_ in groups.values() for r in rows_)
    runs = []
    for (method, seed), members in sorted(groups.items()):
        run = out / method / f"seed{seed}"
        record_run(
            run,
            method=method,
            seed=seed,
            y_true=[r["y_true"] for r in members],
            y_pred=[r["y_pred"] for r in members],
            class_names=[str(c) for c in range(k)],
        )
        runs.append(run)
    return runs


def record_predictions(files: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Record every prediction file as runs under ``out_dir``; their run directories."""
    runs: list[Path] = []
    for f in map(Path, files):
        if not f.is_file():
            raise FileNotFoundError(f"prediction file {f} does not exist")
        reader = {".npz": _npz, ".csv": _csv}.get(f.suffix.lower())
        if reader is None:
            raise ValueError(f"{f}: prediction files are .npz or .csv")
        runs += reader(f, Path(out_dir))
    return runs
