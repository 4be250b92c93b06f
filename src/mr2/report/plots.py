"""PNG plots of a summary: sorted per-class accuracy per method, and per-class gain over
the reference with a band of ± one standard deviation over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mr2.report.backend import pyplot as _pyplot
from mr2.report.backend import save
from mr2.report.diagnostics import correlations
from mr2.report.ranking import hardest_first
from mr2.report.summary import Frontiers, ReportSummary

MAX_NAMED_TICKS = 100  # more classes than this: the gain plot names none (per_class.csv does)


def colours(summary: ReportSummary) -> dict[str, Any]:
    """One colour per method, the same in every plot (by the methods' order in the
    summary; tab10, or tab20 beyond ten methods)."""
    plt = _pyplot()
    n = len(summary.methods)
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(summary.methods)}


def sorted_accuracy(summary: ReportSummary, path: Path) -> Path:
    plt = _pyplot()
    colour = colours(summary)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for m, body in summary.methods.items():
        acc = np.sort(np.asarray(body.per_class_mean) * 100)
        ax.plot(np.arange(1, len(acc) + 1), acc, marker="o", ms=3, label=m, color=colour[m])
    ax.set_xlabel("class rank (worst to best)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Per-class accuracy, sorted ({summary.dataset})")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def gain_over_reference(summary: ReportSummary, path: Path) -> Path:
    plt = _pyplot()
    ref_name = summary.reference
    order = hardest_first(summary.groups)  # as the report ranks them, not by the gains' test set
    names = [summary.class_names[c] for c in order]
    colour = colours(summary)
    fig, ax = plt.subplots(figsize=(min(max(6.4, 0.35 * len(order)), 40.0), 4.0))
    x = np.arange(len(order))
    for m, body in summary.methods.items():
        if m == ref_name or body.vs_reference is None:
            continue
        gain = np.asarray(body.vs_reference.gain)[order] * 100
        std = np.asarray(body.vs_reference.gain_std)[order] * 100
        ax.plot(x, gain, marker="o", ms=3, label=m, color=colour[m])
        ax.fill_between(x, gain - std, gain + std, alpha=0.2, color=colour[m])
    ax.axhline(0, color="black", lw=0.8)
    if len(names) <= MAX_NAMED_TICKS:
        ax.set_xticks(
            x,
            names,
            rotation=60 if len(names) <= 30 else 90,
            ha="right",
            fontsize=8 if len(names) <= 30 else 5,
        )
    ax.set_ylabel(f"accuracy gain over {ref_name} (points)")
    ax.set_title("Per-class gain, hardest first (band: ± std of paired per-seed gains)")
    ax.set_xlabel(f"classes, hardest first ({summary.ranking})", fontsize=8)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no other method: nothing to label
        ax.legend()
    return save(fig, path)


def spread_vs_accuracy(summary: ReportSummary, path: Path) -> Path | None:
    """Per-class feature spread ||s_k||^2 (test features) against per-class accuracy."""
    plt = _pyplot()
    colour = colours(summary)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    drawn = False
    for m, body in summary.methods.items():
        spread = body.test_spread_mean
        if spread is None:
            continue
        acc = np.asarray(body.per_class_mean) * 100
        c = correlations(spread, acc)
        ax.scatter(spread, acc, s=18, label=f"{m} (Spearman {c.spearman:+.2f})", color=colour[m])
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("feature spread ||s_k||^2 on test (mean over seeds)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Are wide classes the hard ones?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)


def margins_over_epochs(summary: ReportSummary, path: Path) -> Path | None:
    """MR²'s margins gamma_k and spreads over epochs (one run per method that records them)."""
    runs = [(m, b.internals) for m, b in summary.methods.items() if b.internals]
    if not runs or runs[0][1] is None:
        return None
    plt = _pyplot()
    method, info = runs[0]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.0))
    epochs = np.asarray(info.epochs) + 1
    margins, spreads = np.asarray(info.margins), np.asarray(info.spreads, dtype=float)
    names = summary.class_names
    for k in range(margins.shape[1]):
        a.plot(epochs, margins[:, k], label=names[k] if margins.shape[1] <= 12 else None)
        b.plot(epochs, spreads[:, k])
    a.set_title(f"{method} (seed {info.seed}): margins gamma_k")
    b.set_title("running spreads ||s_k||^2")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if margins.shape[1] <= 12:
        a.legend(fontsize=6, ncol=2)
    return save(fig, path)


def frontier(summary: ReportSummary, fronts: Frontiers | None, path: Path) -> Path | None:
    """Worst class (left) and hard third (right) against overall accuracy on test: per
    method, the run without offsets (a square) and offsets fit on validation for the best
    worst class at levels below its own accuracy (the upper envelope on validation), in
    order of accuracy (means over seeds)."""
    if fronts is None or not fronts.curves:
        return None
    plt = _pyplot()
    colour = colours(summary)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    for m, points in fronts.curves.items():
        plain, fitted = points[0], sorted(points[1:], key=lambda p: p.overall)
        x = [100 * p.overall for p in fitted]
        for ax, key in zip(axes, ("worst", "hard"), strict=True):
            ax.plot(x, [100 * getattr(p, key) for p in fitted], marker="o", ms=3, label=m,
                    color=colour.get(m))  # fmt: skip
            ax.plot([100 * plain.overall], [100 * getattr(plain, key)], marker="s", ms=6,
                    color=colour.get(m), markerfacecolor="none")  # fmt: skip
    for ax, name in zip(axes, ("worst class", "hard third"), strict=True):
        ax.set_xlabel("test overall accuracy (%)")
        ax.set_ylabel(f"test {name} (%)")
        ax.grid(alpha=0.3)
    axes[0].set_title("Offsets fit on validation (square: no offsets)")
    axes[0].legend(fontsize=7)
    return save(fig, path)
