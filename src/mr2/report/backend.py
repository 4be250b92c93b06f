"""matplotlib, headless (Agg), for every plot of the report; a clear error without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'mr2[report]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    """Lay out, write at 120 dpi, close; the path written."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path
