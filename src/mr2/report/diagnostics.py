"""Why are these classes hard, and what did a method do: spread vs accuracy, confusions,
and the spread diagnostics of a feature matrix (``mr2 diagnose``; the saved model's
features come from ``mr2.engine.diagnose``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mr2 import _checks
from mr2.functional import class_statistics
from mr2.metrics import classwise_accuracy
from mr2.report.backend import pyplot as _pyplot
from mr2.report.backend import save
from mr2.report.summary import ReportSummary
from mr2.report.tables import cell


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation over ``n`` classes (NaN with fewer than 3, or a
    constant side)."""

    pearson: float
    spearman: float
    n: int


def correlations(x: Any, y: Any) -> Correlation:
    """Pearson and Spearman correlation over the classes where both are defined."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return Correlation(float("nan"), float("nan"), len(x))
    from scipy import stats  # extra "report"

    return Correlation(
        float(stats.pearsonr(x, y).statistic), float(stats.spearmanr(x, y).statistic), len(x)
    )


def confusion_summary(summary: ReportSummary, top: int = 2) -> str:
    """For each hard class: the classes the reference confuses it with most, and how often
    each method makes those same confusions (rates over all seeds' test predictions)."""
    names, ref = summary.class_names, summary.reference
    methods = list(summary.methods)
    lines = [
        "| hard class | mistaken for | " + " | ".join(map(cell, methods)) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    conf = {m: np.asarray(summary.methods[m].confusion_sum, dtype=float) for m in methods}
    for c in summary.groups["hard"]:
        row = conf[ref][c].copy()
        row[c] = -1
        for j in np.argsort(-row, kind="stable")[:top]:
            rates = [f"{100 * conf[m][c, j] / max(conf[m][c].sum(), 1):.1f}" for m in methods]
            lines.append(f"| {cell(names[c])} | {cell(names[j])} | " + " | ".join(rates) + " |")
    return "\n".join(lines)


def spread_table(summary: ReportSummary) -> str:
    lines = [
        "| method | Pearson(spread, acc) | Spearman(spread, acc) | classes |",
        "|---|---|---|---|",
    ]
    for m, body in summary.methods.items():
        if body.test_spread_mean is None:
            continue
        c = correlations(body.test_spread_mean, body.per_class_mean)
        lines.append(f"| {cell(m)} | {c.pearson:+.2f} | {c.spearman:+.2f} | {c.n} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Diagnosis:
    """Per-class feature statistics of one split (``mr2 diagnose``'s diagnose.json):
    samples, ||mu_k||^2 and spread ||s_k||^2, with the per-class accuracy and its
    correlation with the spread when predictions were given."""

    count: list[float]
    norm_sq: list[float]
    spread: list[float]
    accuracy: list[float] | None = None
    correlation: Correlation | None = None
    class_names: list[str] | None = None
    split: str | None = None  # of a run: "val" or "test"

    def to_dict(self) -> dict[str, Any]:
        """As written to diagnose.json: fields that do not apply are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def diagnose_features(
    features: Any, labels: Any, preds: Any = None, num_classes: int | None = None
) -> Diagnosis:
    """Per-class spread ||s_k||^2, ||mu_k||^2, accuracy (if predictions are given) and their
    correlation, from a feature matrix (N, D) and labels (N,)."""
    f = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    y = torch.from_numpy(_checks.integer_labels(labels))
    if f.dim() != 2 or y.shape != (f.shape[0],):
        raise ValueError(
            f"need features (N, D) and labels (N,), got {tuple(f.shape)}, {tuple(y.shape)}"
        )
    if not len(y):
        raise ValueError("the feature file holds no samples (features and labels are empty)")
    k = num_classes or int(y.max()) + 1
    count, norm_sq, spread = class_statistics(f, y, k)
    found = Diagnosis(count.tolist(), norm_sq.tolist(), spread.tolist())
    if preds is None:
        return found
    p = torch.as_tensor(np.asarray(preds))
    p = p.argmax(1) if p.dim() == 2 else torch.from_numpy(_checks.integer_labels(preds, "preds"))
    acc = classwise_accuracy(p, y, k)
    return replace(
        found, accuracy=acc.tolist(), correlation=correlations(spread.numpy(), acc.numpy())
    )


def diagnose_plot(result: Diagnosis, path: Path) -> Path:
    if result.accuracy is None or result.correlation is None:
        raise ValueError("the spread-vs-accuracy plot needs the per-class accuracy (predictions)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    acc = np.asarray(result.accuracy) * 100
    ax.scatter(result.spread, acc)
    names = result.class_names or [str(i) for i in range(len(acc))]
    if len(acc) <= 30:
        for x, yv, n in zip(result.spread, acc, names, strict=True):
            ax.annotate(n, (x, yv), fontsize=7)
    c = result.correlation
    ax.set_title(f"spread vs accuracy: Pearson {c.pearson:+.2f}, Spearman {c.spearman:+.2f}")
    ax.set_xlabel("feature spread ||s_k||^2")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    return save(fig, path)


def margin_difficulty(summary: ReportSummary) -> list[str]:
    """Per method with MR² margins: the Spearman correlation of each run's final margins
    with its validation error per class (mean ± std over seeds): > 0 when the margins follow
    difficulty, < 0 when they favour the easy classes."""
    by_method: dict[str, list[float]] = {}
    for run in summary.runs:
        if run.margin_difficulty_spearman is not None:
            by_method.setdefault(run.method, []).append(run.margin_difficulty_spearman)
    if not by_method:
        return []
    said = "; ".join(
        f"{cell(m)} {np.mean(v):+.2f}" + (f" ± {np.std(v, ddof=1):.2f}" if len(v) > 1 else "")
        + f" ({len(v)} run{'s' if len(v) > 1 else ''})"
        for m, v in by_method.items()
    )  # fmt: skip
    return [
        "MR²'s final margins against each run's held-out difficulty (Spearman of gamma_k "
        f"with the class's validation error; > 0: larger margins for harder classes): {said}.",
        "",
    ]
