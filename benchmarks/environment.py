"""What a benchmark result was measured on: machine, versions and commit, saved beside
every number (``describe``), and the atomic JSON write every benchmark uses (``save``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch

import mr2

ROOT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """The commit measured: ``$MR2_COMMIT`` (set where the tree travels without its .git,
    e.g. to a GPU machine), else git's short hash, "-dirty" when the files differ from it
    (a copied tree beside an older .git), else "unknown"."""
    if os.environ.get("MR2_COMMIT"):
        return os.environ["MR2_COMMIT"]
    done = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=7"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "unknown"


def describe(device: str) -> dict:
    cuda = device.startswith("cuda")
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda if cuda else None,
        "mr2": mr2.__version__,
        "commit": commit(),
    }


def save(payload: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)
    return path
