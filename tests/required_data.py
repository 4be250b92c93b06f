"""Data files that only CI installs (Debian's dataset-fashion-mnist, the ../shared folder
beside the clone). On a user's machine a test that needs one is skipped with a visible
reason; with ``MR2_REQUIRE_DATA=1`` (set by .ci/run) its absence is a failure, so CI always
exercises the real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
REQUIRED = os.environ.get("MR2_REQUIRE_DATA", "") not in ("", "0")


def require(path: Path, what: str, how: str) -> Path:
    """``path`` if it exists; else skip (a user's machine) or fail (MR2_REQUIRE_DATA=1)."""
    if path.exists():
        return path
    message = f"{what} not found at {path} ({how})"
    if REQUIRED:
        pytest.fail(f"{message}; MR2_REQUIRE_DATA is set, so the real files are required")
    pytest.skip(f"{message}; set MR2_REQUIRE_DATA=1 to make this a failure")
    raise AssertionError  # unreachable: skip raises


def shared(*parts: str) -> Path:
    """A file of ../shared/data (the project's data folder beside the clone)."""
    return require(SHARED.joinpath(*parts), "../shared/data", "the project's data folder")


def debian_fashion_mnist() -> Path:
    return require(
        DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz",
        "Debian's Fashion-MNIST",
        "apt-get install dataset-fashion-mnist",
    )
