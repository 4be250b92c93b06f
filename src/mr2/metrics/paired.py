"""A method against a baseline, paired by seed: easy / medium / hard gains with the classes
ranked where they are not scored (``mr2.metrics.hard``), worst-class and max-min gains, the
sign-flip p with its floor, and per-class paired t-tests with Holm-adjusted p-values and
Bonferroni simultaneous intervals."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mr2.metrics.hard import (
    ClassEvidence,
    Fold,
    HardRanking,
    choose_ranking,
    display_groups,
    group_gains,
)
from mr2.metrics.summary import _as_numpy
from mr2.metrics.uncertainty import _scipy_stats, min_sign_flip_p, sign_flip_p_value


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error); NaN entries stay NaN and
    are not counted in the family."""
    p = _as_numpy(p_values).ravel()
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def class_intervals(diff: np.ndarray, alpha: float = 0.05):
    """Per-class paired t-tests of (S, K) per-seed differences: Holm-adjusted p-values and
    Bonferroni simultaneous (1 - alpha) intervals (the interval form of the family-wise
    control Holm gives the p-values), both NaN for a class with fewer than two values or
    no spread. Differences that are equal up to floating-point rounding (a spread below
    1e-9 of their size: every seed +1 of 10 images) have no spread: a t-test on the rounding
    would give p ~ 1e-30 (found by the reports' null simulation)."""
    s, k = diff.shape
    nan = np.full(k, np.nan)
    if s < 2:
        return nan, nan.copy(), nan.copy()
    stats = _scipy_stats("class_intervals")
    mean = np.nanmean(diff, axis=0)
    sd = np.nanstd(diff, axis=0, ddof=1)
    n = (~np.isnan(diff)).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = sd > 1e-9 * np.nanmax(np.abs(diff), axis=0)
        t = mean / (sd / np.sqrt(n))
        p = np.where(spread, 2 * stats.t.sf(np.abs(t), np.maximum(n - 1, 1)), np.nan)
        half = stats.t.ppf(1 - alpha / (2 * k), np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(spread & (n > 1), half, np.nan)
    return holm(p), mean - half, mean + half


@dataclass(frozen=True)
class PairedComparison:
    """A method against a baseline, paired by seed (same seed = same data order and init).

    Attributes:
        gain: (K,) mean over seeds of per-class accuracy differences (method - baseline);
            ``gain_std`` their std over seeds (ddof 1; 0 with one seed: the seed-noise band),
            ``gain_lower`` / ``gain_upper`` their Bonferroni simultaneous 95 % t-intervals and
            ``p_holm`` the Holm-adjusted per-class paired t-test p-values (NaN with < 2 seeds):
            descriptive, no class is picked by ranking.
        group_gain: mean over seeds of the easy / medium / hard differences, the classes
            ranked as ``ranking`` says (``mr2.metrics.hard``: never on what is scored when
            it reads "other seeds").
        hard_gain_per_seed: per-seed hard-third differences.
        p_seeds: sign-flip p-value of the per-seed hard gains; ``p_seeds_min`` the smallest
            p that test can give with S seeds (2 / 2^S). Whether it is marked is the
            report's decision, over all its primary contrasts (``mr2.report.marks``).
        worst_gain_per_seed: per seed, the method's worst class minus the baseline's (each
            of its own classes).
        ranking: how the classes were ranked (``HardRanking.label``); ``unbiased`` whether
            that ranking keeps both the test samples and the scored models out of it.
        groups: the groups for display (ranked on all the baseline's seeds).
    """

    gain: list[float]
    gain_std: list[float]
    gain_lower: list[float]
    gain_upper: list[float]
    p_holm: list[float]
    group_gain: dict[str, float]
    hard_gain_per_seed: list[float]
    p_seeds: float
    p_seeds_min: float
    worst_gain_per_seed: list[float]
    ranking: str = ""
    unbiased: bool = False
    groups: dict[str, list[int]] = field(default_factory=dict)


def _evidence(rows) -> list[ClassEvidence]:
    if isinstance(rows, (list, tuple)) and rows and isinstance(rows[0], ClassEvidence):
        return list(rows)
    return [ClassEvidence.of(r) for r in np.atleast_2d(_as_numpy(rows))]


def paired_comparison(
    method_acc: Any,
    baseline_acc: Any,
    *,
    ranking: HardRanking | None = None,
    seeds: list[int] | None = None,
    reference: Any = None,
    alpha: float = 0.05,
) -> PairedComparison:
    """Compare a method with a baseline, seed by seed.

    Args:
        method_acc: (S, K) per-class test accuracies (row s = seed s), or S
            ``ClassEvidence`` (with validation accuracies and test halves where known).
        baseline_acc: the baseline's, in the same form and seed order.
        ranking: how to rank the classes into easy / medium / hard (default:
            ``choose_ranking`` over the baseline's rows: its validation accuracies of the
            other seeds when given, else cross-fitted test halves, else its other seeds'
            test accuracies; with one seed and test only, labelled optimistic).
        seeds: the rows' seed labels (default 0 .. S-1).
        reference: (K,) accuracies from data you do not score (e.g. another study) that rank
            the classes for every seed instead; the result says "given reference".
        alpha: level of the per-class intervals.
    """
    m, b = _evidence(method_acc), _evidence(baseline_acc)
    if len(m) != len(b) or any(x.test.shape != y.test.shape for x, y in zip(m, b, strict=True)):
        raise ValueError(f"method ({len(m)} rows) and baseline ({len(b)}) must have equal (S, K)")
    seeds = list(range(len(b))) if seeds is None else list(seeds)
    ranking = _ranking(ranking, reference, seeds, b, m)
    gains = [group_gains(ranking, x, y, s) for x, y, s in zip(m, b, seeds, strict=True)]
    hard = np.array([g["hard"] for g in gains])
    with warnings.catch_warnings():  # an empty group (K < 3) is NaN, said in the report
        warnings.simplefilter("ignore", RuntimeWarning)
        group_gain = {g: float(np.nanmean([x[g] for x in gains])) for g in gains[0]}
    pairs = list(zip(m, b, strict=True))
    return PairedComparison(
        **_class_gains(np.array([x.test for x in m]) - np.array([y.test for y in b]), alpha),
        group_gain=group_gain,
        hard_gain_per_seed=[float(x) for x in hard],
        p_seeds=sign_flip_p_value(hard),
        p_seeds_min=min_sign_flip_p(len(hard)),
        worst_gain_per_seed=[float(np.nanmin(x.test) - np.nanmin(y.test)) for x, y in pairs],
        ranking=ranking.label,
        unbiased=ranking.unbiased,
        groups=display_groups(ranking),
    )


def _ranking(ranking, reference, seeds: list[int], baseline, method) -> HardRanking:
    """The given ranking, else one fold of ``reference`` for every seed, else
    ``choose_ranking`` over the baseline's rows."""
    if reference is not None:
        fold = (Fold(_as_numpy(reference), "test"),)
        return HardRanking("given reference", {s: fold for s in seeds}, fold)
    if ranking is None:
        return choose_ranking(dict(zip(seeds, baseline, strict=True)), method)
    return ranking


def _class_gains(diff: np.ndarray, alpha: float) -> dict[str, Any]:
    """Per class, from the (S, K) paired differences: mean and std over seeds, the
    simultaneous interval and Holm-adjusted p (``class_intervals``)."""
    p_holm, lower, upper = class_intervals(diff, alpha)
    gain = np.nanmean(diff, axis=0)
    std = np.nanstd(diff, axis=0, ddof=1) if len(diff) > 1 else np.zeros(len(gain))
    return {
        "gain": [float(x) for x in gain],
        "gain_std": [float(x) for x in std],
        "gain_lower": [float(x) for x in lower],
        "gain_upper": [float(x) for x in upper],
        "p_holm": [float(x) for x in p_holm],
    }


__all__ = ["PairedComparison", "class_intervals", "holm", "paired_comparison"]
