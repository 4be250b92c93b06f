"""What each command needs beyond mr2's core dependencies, checked before it trains or
writes anything (a comparison must not train every run and then fail on its report).

The optional dependencies are grouped in the package's extras (``pip install 'mr2[...]'``):
``report`` (plots and statistics of a report), ``data`` (scikit-learn's digits, image
files), ``vision`` (torchvision, timm, open_clip), ``metrics``, ``logging``, ``cluster``.
"""

from __future__ import annotations

from importlib.util import find_spec

EXTRAS = {  # extra -> {module: package}
    "report": {"matplotlib": "matplotlib", "scipy": "scipy"},
    "data": {"sklearn": "scikit-learn", "PIL": "pillow"},
}


def missing(extra: str) -> list[str]:
    """The packages of ``extra`` that are not installed."""
    return [package for module, package in EXTRAS[extra].items() if find_spec(module) is None]


def require(extra: str, what: str) -> None:
    """``ImportError`` naming the packages ``what`` needs and the extra that installs them."""
    gone = missing(extra)
    if gone:
        raise ImportError(f"{what} needs {' and '.join(gone)}: pip install 'mr2[{extra}]'")
