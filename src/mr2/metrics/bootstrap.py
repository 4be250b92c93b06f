"""Test-sample noise: bootstrap confidence intervals of class-wise results, alone and for a
method against a baseline on the same test set (seed noise: ``mr2.metrics.uncertainty``).
Easy / medium / hard are ranked on data they are not scored on (``mr2.metrics.hard``) and
not re-ranked inside the bootstrap, which would bias "hard" low by construction."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from mr2 import _checks
from mr2.metrics.hard import (
    ClassEvidence,
    choose_ranking,
    crossfit_halves,
    group_levels,
    half_accuracies,
    ranked_groups,
)
from mr2.metrics.summary import SCALAR_FIELDS, _as_numpy, disparity_summary


def _resampled_class_means(
    correct: np.ndarray,
    targets: np.ndarray,
    num_classes: int,
    n_boot: int,
    rng: np.random.Generator,
    stratified: bool,
) -> np.ndarray:
    """(n_boot, K) per-class means of ``correct`` (0/1 hits, or any per-sample value) over
    bootstrap resamples of the test samples; NaN where a resample has no sample of a class."""
    out = np.empty((n_boot, num_classes))
    order = np.argsort(targets, kind="stable")
    y_sorted, c_sorted = targets[order], correct[order].astype(np.float64)
    counts = np.bincount(targets, minlength=num_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n = len(targets)
    for lo in range(0, n_boot, 256):  # chunks keep memory at 256 x N
        m = min(256, n_boot - lo)
        u = rng.random((m, n))
        if stratified:  # each class keeps its size; resample within the class
            idx = starts[y_sorted] + np.floor(u * counts[y_sorted]).astype(np.int64)
            hits = c_sorted[idx]
            ys = np.broadcast_to(y_sorted, (m, n))
        else:
            idx = np.floor(u * n).astype(np.int64)
            hits, ys = c_sorted[idx], y_sorted[idx]
        flat = (np.arange(m)[:, None] * num_classes + ys).ravel()
        right = np.bincount(flat, weights=hits.ravel(), minlength=m * num_classes)
        total = np.bincount(flat, minlength=m * num_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo : lo + m] = (right / total).reshape(m, num_classes)
    return out


def _inputs(preds, targets, num_classes):
    if np.ndim(_as_numpy(preds)) == 2:
        raise ValueError("pass predicted labels (N,), not logits")
    p = _checks.integer_labels(preds, "predictions")
    t = _checks.integer_labels(targets, "targets")
    if p.shape != t.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(
            f"predictions {p.shape} and targets {t.shape} must be equal, non-empty (N,)"
        )
    if t.min() < 0 or t.max() >= num_classes:
        raise ValueError(f"targets must lie in [0, {num_classes})")
    return p, t


@dataclass(frozen=True)
class BootstrapCI:
    """Point estimates and percentile intervals of every ``DisparitySummary`` scalar."""

    estimate: dict[str, float]
    lower: dict[str, float]
    upper: dict[str, float]
    level: float
    n_boot: int


@dataclass(frozen=True)
class PairedBootstrap:
    """The hard-third gain of a method over a baseline on one test set (``gain``), its
    percentile interval over test-sample resamples, and the fraction of resamples with a
    gain <= 0 (a one-sided p)."""

    gain: float
    lower: float
    upper: float
    p_one_sided: float


def bootstrap_ci(
    preds: Any,
    targets: Any,
    num_classes: int,
    *,
    reference: Any = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    stratified: bool = True,
) -> BootstrapCI:
    """Percentile bootstrap intervals over test samples for all summary statistics.

    Args:
        preds: (N,) predicted labels.
        targets: (N,) true labels.
        reference: (K,) accuracies from other data (e.g. validation) that fix the easy /
            medium / hard groups; default: cross-fitted on the test halves (ranked on one
            half of each class's samples, scored on the other, swapped, averaged; the
            resamples are drawn within each half), never ranked on what is scored.
        stratified: resample within each class (class sizes fixed, the usual choice for
            per-class metrics); False resamples the whole test set.

    Written here rather than with ``scipy.stats.bootstrap``: one vectorised draw of
    within-class resamples (chunks of 256 resamples, counted with ``bincount``) serves all
    summary statistics at once, resamples missing a class stay NaN instead of failing, and
    ``paired_bootstrap`` resamples method and baseline with the same indices.
    """
    p, t = _inputs(preds, targets, num_classes)
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got {level}, {n_boot}")
    correct = p == t
    counts = np.bincount(t, minlength=num_classes)
    point = _stratum_means(t, correct, num_classes)
    ref = point if reference is None else _as_numpy(reference)
    estimate = disparity_summary(point, reference=ref, class_counts=counts).as_dict()
    rng = np.random.default_rng(seed)
    boot = _resampled_class_means(correct, t, num_classes, n_boot, rng, stratified)
    values: dict[str, list[float]] = {f: [] for f in SCALAR_FIELDS}
    for row in boot:
        row_counts = counts if stratified else None
        s = disparity_summary(row, reference=ref, class_counts=row_counts).as_dict()
        for f in SCALAR_FIELDS:
            values[f].append(s[f])
    if reference is None:  # easy / medium / hard cross-fitted on the test halves, ranked once
        estimate.update(_crossfit_groups(point, correct, t, num_classes, rng, stratified, values))
    lower, upper = _percentiles(values, level)
    return BootstrapCI({f: estimate[f] for f in SCALAR_FIELDS}, lower, upper, level, n_boot)


def _stratum_means(strata: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n,) mean of ``values`` per stratum; NaN for an empty stratum."""
    counts = np.bincount(strata, minlength=n)
    sums = np.bincount(strata, weights=values, minlength=n)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _crossfit_groups(point, correct, t, num_classes, rng, stratified, values) -> dict[str, float]:
    """Easy / medium / hard levels cross-fitted on the test halves (ranked once on the point
    estimate's halves): their resampled values written into ``values``, the point levels
    returned."""
    run = ClassEvidence.of(point, halves=half_accuracies(t, correct, num_classes))
    ranking = choose_ranking({0: run})
    n_boot = len(values[SCALAR_FIELDS[0]])
    halves = _resampled_class_means(
        correct, 2 * t + ~crossfit_halves(t), 2 * num_classes, n_boot, rng, stratified
    ).reshape(n_boot, num_classes, 2)
    for i in range(n_boot):
        resampled = ClassEvidence(run.test, halves=halves[i].T)
        for g, v in group_levels(ranking, resampled, 0).items():
            values[g][i] = v
    return group_levels(ranking, run, 0)


def _percentiles(values: dict[str, Any], level: float) -> tuple[dict, dict]:
    alpha = (1 - level) / 2
    with warnings.catch_warnings():  # a statistic undefined in every resample stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        lower = {f: float(np.nanquantile(v, alpha)) for f, v in values.items()}
        upper = {f: float(np.nanquantile(v, 1 - alpha)) for f, v in values.items()}
    return lower, upper


def paired_bootstrap(
    preds_method,
    preds_baseline,
    targets,
    num_classes: int,
    *,
    reference=None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedBootstrap:
    """Test-sample bootstrap of the hard-third gain of one method over a baseline on the
    same test set (both resampled with the same indices, stratified by class).

    The hard third is ranked where it is not scored: by ``reference`` (K,) accuracies you
    give (e.g. the baseline's validation accuracies), else cross-fitted: ranked on the
    baseline's accuracy on half A of each class's test samples and scored on half B, then
    the reverse, averaged (``mr2.metrics.hard.crossfit_halves``; resampled within halves).

    Returns: a ``PairedBootstrap`` (p: the fraction of resamples with gain <= 0).
    """
    pm, t = _inputs(preds_method, targets, num_classes)
    pb, _ = _inputs(preds_baseline, targets, num_classes)
    delta = (pm == t).astype(np.float64) - (pb == t)  # resampled with one draw for both
    strata, parts, hard = _hard_strata(t, pb == t, num_classes, reference)

    def gain_of(class_means: np.ndarray) -> np.ndarray:  # (..., K * parts) -> (...)
        m = class_means.reshape(*class_means.shape[:-1], num_classes, parts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class empty in a half
            return np.mean([np.nanmean(m[..., h, i], axis=-1) for i, h in enumerate(hard)], 0)

    point = _stratum_means(strata, delta, num_classes * parts)
    boot = _resampled_class_means(
        delta, strata, num_classes * parts, n_boot, np.random.default_rng(seed), stratified=True
    )
    gains = gain_of(boot)
    alpha = (1 - level) / 2
    return PairedBootstrap(
        gain=float(gain_of(point)),
        lower=float(np.nanquantile(gains, alpha)),
        upper=float(np.nanquantile(gains, 1 - alpha)),
        p_one_sided=float(np.mean(gains <= 0)),
    )


def _hard_strata(t: np.ndarray, baseline_correct: np.ndarray, num_classes: int, reference):
    """(strata, parts, hard classes per part): by class with ``reference``'s hard third, or
    by class and test half, each half's hard third ranked on the baseline's other half."""
    if reference is not None:
        return t, 1, [ranked_groups(_as_numpy(reference))["hard"]]
    base = half_accuracies(t, baseline_correct, num_classes)
    hard = [ranked_groups(base[1])["hard"], ranked_groups(base[0])["hard"]]
    return 2 * t + ~crossfit_halves(t), 2, hard


__all__ = ["BootstrapCI", "PairedBootstrap", "bootstrap_ci", "paired_bootstrap"]
