"""Uncertainty of class-wise results: mean ± std over seeds, p-values and power (the
bootstrap over test samples: ``mr2.metrics.bootstrap``; paired comparisons of a method
against a baseline: ``mr2.metrics.paired``).

Two noise sources are kept apart: test-sample noise (which samples happened to be in the
test set: ``bootstrap_ci``, ``paired_bootstrap``) and seed noise (training randomness:
``mean_std``, ``paired_comparison``). Easy / medium / hard are ranked on data they are not
scored on (``mr2.metrics.hard``) and not re-ranked inside a bootstrap, which would bias
"hard" low by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mr2.metrics.summary import _as_numpy


@dataclass(frozen=True)
class MeanStd:
    """Mean ± sample standard deviation (ddof = 1) over seeds."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}"


def mean_std(values) -> MeanStd:
    """Mean and sample std (ddof = 1; 0 for a single value) of per-seed values."""
    v = _as_numpy(values).ravel()
    if v.size == 0 or np.isnan(v).any():
        raise ValueError("mean_std needs at least one value and no NaN")
    return MeanStd(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size))


EXACT_UP_TO = 16  # values; above, a seeded Monte Carlo of MONTE_CARLO sign flips
MONTE_CARLO = 65536
TIE_TOLERANCE = 1e-9  # relative: sums equal in exact arithmetic count as ties


def sign_flip_p_value(differences) -> float:
    """Two-sided paired permutation p-value for mean(d) != 0: the share of sign flips of
    the differences whose |sum| is at least the observed one, exact (all 2^n flips) up to
    16 values, a seeded Monte Carlo of 2^16 flips above ((count + 1) / (2^16 + 1), never
    0). Sums that are equal in exact
    arithmetic but differ by floating-point rounding count as ties (as extreme): SciPy's
    ``permutation_test`` missed some (0.617 where the exact p is 0.660). With n values the
    smallest possible p is 2 / 2^n: 3 seeds can never give p < 0.25. NaN when there is no
    value or any is NaN or infinite (nothing to test), never a spuriously small p."""
    d = _as_numpy(differences).ravel().astype(np.float64)
    if d.size == 0 or not np.isfinite(d).all():  # NaN or ±Inf: nothing to test
        return float("nan")
    if d.size <= EXACT_UP_TO:
        bits = (np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1
        signs = 1.0 - 2.0 * bits  # every pattern once, the observed one (all +) first
    else:
        signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(MONTE_CARLO, d.size))
    extreme = np.abs(signs @ d) >= abs(float(d.sum())) - TIE_TOLERANCE * float(np.abs(d).sum())
    if d.size <= EXACT_UP_TO:
        return float(extreme.mean())
    return float((extreme.sum() + 1) / (len(extreme) + 1))  # the observed flip counted once


def _scipy_stats(caller: str):
    try:
        from scipy import stats
    except ImportError as err:  # pragma: no cover - scipy comes with the report extra
        raise ImportError(f"{caller} needs SciPy: pip install 'mr2[report]'") from err
    return stats


def seeds_for_power(
    spread: float,
    effect: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    max_seeds: int = 10_000,
) -> int:
    """Seeds (pairs) a two-sided paired t-test at level ``alpha`` needs to detect a true
    mean difference ``effect`` with probability ``power``, when the per-seed differences
    have standard deviation ``spread`` (same units as ``effect``): the smallest n >= 2
    whose power under the noncentral t distribution reaches ``power`` (SciPy). ``max_seeds``
    + 1 when even that many do not."""
    if not (spread > 0 and effect > 0):
        raise ValueError(f"spread and effect must be > 0, got {spread} and {effect}")
    stats = _scipy_stats("seeds_for_power")
    dz = effect / spread
    for n in range(2, max_seeds + 1):
        df, nc = n - 1, dz * np.sqrt(n)
        t = stats.t.ppf(1 - alpha / 2, df)
        if stats.nct.sf(t, df, nc) + stats.nct.cdf(-t, df, nc) >= power:
            return n
    return max_seeds + 1


def sign_test_p_value(gains) -> float:
    """Exact two-sided binomial sign test of #positive vs #negative (zeros and NaN dropped);
    NaN for empty input."""
    g = _as_numpy(gains).ravel().astype(np.float64)
    if g.size == 0:
        return float("nan")
    g = g[~np.isnan(g)]
    pos, neg = int((g > 0).sum()), int((g < 0).sum())
    n = pos + neg
    if n == 0:
        return 1.0
    return float(_scipy_stats("sign_test_p_value").binomtest(pos, n, 0.5).pvalue)


def min_sign_flip_p(n: int) -> float:
    """The smallest two-sided p-value the sign-flip test can give with n paired values:
    2 / 2^n (all n of one sign). With 5 seeds it is 0.0625: never below 0.05."""
    return 1.0 if n < 2 else min(1.0, 2.0 / 2**n)


__all__ = [
    "MeanStd",
    "mean_std",
    "min_sign_flip_p",
    "seeds_for_power",
    "sign_flip_p_value",
    "sign_test_p_value",
]
