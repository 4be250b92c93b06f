"""The package's import graph (every import, function-local ones included, read with ast)
has no cycle: the tree reads as layers."""

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The mr2 modules ``path`` imports: ``from a import b`` is a.b when that is a module,
    else a; names resolved to the longest module prefix."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *filter(None, [base])])
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != me:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / "mr2").rglob("*.py")}
    return {m: imports(p, set(files)) for m, p in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    edges = graph()
    assert "mr2.engine.run" in edges["mr2.engine.train"]  # the graph is really read
    assert (
        cycles(
            {
                m: {
                    d
                    for d in deps
                    if not m.startswith(d + ".") and m != d and not (d == "mr2" or m == "mr2")
                }
                for m, deps in edges.items()
            }
        )
        == []
    )


def _functions(source: str):
    tree = ast.parse(source)
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _imports_mr2(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "mr2"
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "mr2" for a in node.names)
    return False


def local_mr2_imports(source: str) -> list[str]:
    """Functions of ``source`` that import one of mr2's own modules."""
    return [fn.name for fn in _functions(source) if any(_imports_mr2(n) for n in ast.walk(fn))]


def test_no_function_local_imports_of_mr2_modules():
    """mr2's own modules are imported at the top of a file (function-local imports are for
    optional third-party packages only): the graph above is the whole truth."""
    planted = "def f():\n    from mr2 import io\n\ndef g():\n    import scipy\n"
    assert local_mr2_imports(planted) == ["f"]
    found = {
        module_name(path): local_mr2_imports(path.read_text())
        for path in (SRC / "mr2").rglob("*.py")
    }
    assert {m: fns for m, fns in found.items() if fns} == {}


def test_no_function_is_over_50_lines():
    long = {
        f"{module_name(path)}.{fn.name}": fn.end_lineno - fn.lineno + 1
        for path in (SRC / "mr2").rglob("*.py")
        for fn in _functions(path.read_text())
        if fn.end_lineno - fn.lineno + 1 > 50
    }
    assert long == {}


def test_the_report_does_not_load_the_engine():
    """The report sits below the engine: importing it (and the metrics) loads no engine
    module, checked in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys, mr2.report, mr2.metrics; "
        "print(sorted(m for m in sys.modules if m.startswith('mr2.engine')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# The floors of the house, lowest first: a module imports only from its own floor or below.
FLOORS = [
    # the foundation: checks, registries, files, processes, the maths, the result records
    ["mr2._checks", "mr2._registry", "mr2._version", "mr2.distributed", "mr2.records",
     "mr2.extras", "mr2.plugins", "mr2.representation", "mr2.functional", "mr2.with_features",
     "mr2.comparison"],
    ["mr2.losses", "mr2.metrics", "mr2.data", "mr2.models", "mr2.backbones", "mr2.posthoc"],
    ["mr2.report"],  # reads results, never trains
    ["mr2.engine"],  # trains runs and comparisons
    ["mr2", "mr2.cli", "mr2.cli_args", "mr2.demo", "mr2.__main__"],  # the facade, the commands
]  # fmt: skip


def floor_of(module: str) -> int:
    """The floor of ``module``: that of the longest listed name it is or lies under."""
    found = [
        (len(name), level)
        for level, names in enumerate(FLOORS)
        for name in names
        if module == name or (name != "mr2" and module.startswith(name + "."))
    ]
    assert found, f"{module} is on no floor: add it to FLOORS"
    return max(found)[1]


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, d) for m, deps in edges.items() for d in deps if floor_of(d) > floor_of(m))


def test_floor_finder_finds_a_planted_upward_import():
    planted = {"mr2.losses.mr2": {"mr2.engine.fit", "mr2.functional"}, "mr2.engine.fit": set()}
    assert upward(planted) == [("mr2.losses.mr2", "mr2.engine.fit")]


def test_no_import_runs_up_a_floor():
    edges = graph()
    assert upward(edges) == []


def test_no_module_is_named_like_a_standard_library_module():
    """``mr2/io.py`` and ``engine/warnings.py`` read like ``import io`` / ``import warnings``
    and shadow them for anyone running a file from inside the package."""
    named = {
        module_name(path)
        for path in (SRC / "mr2").rglob("*.py")
        if (path.parent.name if path.stem == "__init__" else path.stem) in sys.stdlib_module_names
    }
    assert named == set()
    assert "io" in sys.stdlib_module_names  # the check reads the real list


def test_no_module_is_over_300_lines():
    """One concept per file: a module that grows past 300 lines is split."""
    long = {
        module_name(path): n
        for path in (SRC / "mr2").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 300
    }
    assert long == {}


def test_a_unit_test_cannot_train():
    """The unit tier's guard (tests/conftest.py): the engine's training loop refuses."""
    from mr2.engine import fit

    with pytest.raises(AssertionError, match="a unit test trains"):
        fit.train_epoch(None, 0, False, None)
