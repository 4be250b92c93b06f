"""PNG plots of a summary: sorted per-class accuracy per method, and per-class gain over
the reference with a band of ± one standard deviation over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'mr2[report]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sorted_accuracy(summary: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for m, body in summary["methods"].items():
        acc = np.sort(np.asarray(body["per_class_mean"]) * 100)
        ax.plot(np.arange(1, len(acc) + 1), acc, marker="o", ms=3, label=m)
    ax.set_xlabel("class rank (worst to best)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Per-class accuracy, sorted ({summary['dataset']})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def gain_over_reference(summary: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    ref_name = summary["reference"]
    ref = np.asarray(summary["methods"][ref_name]["per_class_mean"])
    order = np.argsort(ref, kind="stable")  # hardest class first
    names = [summary["class_names"][c] for c in order]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.35 * len(order)), 4.0))
    x = np.arange(len(order))
    for m, body in summary["methods"].items():
        if m == ref_name or body["vs_reference"] is None:
            continue
        gain = np.asarray(body["vs_reference"]["gain"])[order] * 100
        std = np.asarray(body["per_class_std"])[order] * 100
        ax.plot(x, gain, marker="o", ms=3, label=m)
        ax.fill_between(x, gain - std, gain + std, alpha=0.2)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(
        x,
        names,
        rotation=60 if len(names) <= 30 else 90,
        ha="right",
        fontsize=8 if len(names) <= 30 else 5,
    )
    ax.set_ylabel(f"accuracy gain over {ref_name} (points)")
    ax.set_title("Per-class gain, classes hardest first (band: ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
