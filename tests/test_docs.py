"""The documentation site builds with mkdocs --strict: a broken reference, a docstring
griffe cannot parse or a page missing from the navigation fails this test."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "api" / "with_features" / "index.html").read_text()
    assert "with_features" in page and "head" in page  # the docstring was rendered
    assert (tmp_path / "guides" / "lightning" / "index.html").is_file()


def test_the_configuration_reference_is_generated_from_the_config():
    """docs/config.md is what ``python -m mr2.engine.config_reference`` prints (in a fresh
    process: no test's registrations), so it lists every key with its default."""
    done = subprocess.run(
        [sys.executable, "-m", "mr2.engine.config_reference"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert (ROOT / "docs" / "config.md").read_text() == done.stdout, (
        "docs/config.md is stale: python -m mr2.engine.config_reference > docs/config.md"
    )
    assert "| `train.compile` | bool or str | `false` |" in done.stdout
