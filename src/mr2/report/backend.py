"""matplotlib, headless (Agg), for every plot of the report; a clear error without it."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'mr2[report]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
