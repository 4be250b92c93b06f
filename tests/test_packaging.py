"""The package installs cleanly and ``pip install -e ".[dev]"`` gives what the tests import."""

import ast
import importlib.metadata
import re
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirement_names(specs: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def test_building_the_metadata_raises_no_warning(tmp_path):
    """setuptools' licence deprecations (a TOML table licence, licence classifiers) were
    printed at every install; with warnings as errors the metadata must still build."""
    code = "import sys, setuptools.build_meta as b; b.prepare_metadata_for_build_wheel(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Deprecat" not in done.stderr


def test_the_dev_extra_holds_every_package_the_tests_import():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"] + project["optional-dependencies"]["dev"])
    declared |= {"torch"}  # installed first, from the build the machine serves
    to_dist = importlib.metadata.packages_distributions()
    scripts = [*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    local = {p.stem for p in scripts} | {"mr2", "conftest"}  # the tests' and scripts' own
    needed: dict[str, str] = {}
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top and top not in local and top not in sys.stdlib_module_names:
                    for dist in to_dist.get(top, [top]):
                        needed.setdefault(dist.lower().replace("_", "-"), path.name)
    missing = {d: f for d, f in needed.items() if d not in declared}
    assert not missing, f"imported by the tests but not in [dev]: {missing}"
