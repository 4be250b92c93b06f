"""Matched-accuracy comparisons without bias (``mr2.report.frontier``): methods drawn like
the reference (exchangeable) gain nothing on average against it with offsets on both arms,
over 200 paired seeds, and are marked in at most 5 % of reports; a planted improvement is
marked. Runs are recorded through ``mr2 report --predictions``'s recorder."""

import zlib

import numpy as np
import pytest

from mr2.report import record_run
from mr2.report.frontier import frontiers
from mr2.report.results import collect

pytestmark = pytest.mark.slow  # 200 paired seeds: end to end

K, N, SEEDS, REPORTS = 5, 100, 10, 20  # 20 reports of 10 paired seeds: 200 paired seeds


def _draw(g, y, strength):
    return g.normal(size=(len(y), K)) + np.eye(K)[y] * strength[y, None]


def _report(root, index: int, planted: float = 0.0):
    """One report's runs: ce and a twin drawn alike; ``planted`` lifts the twin's weakest
    class on validation and test alike (a real improvement of the model)."""
    y = np.repeat(np.arange(K), N // K)
    strength = np.linspace(0.4, 2.5, K)
    for method in ("ce", "twin"):
        for seed in range(SEEDS):
            g = np.random.default_rng([index, seed, zlib.crc32(method.encode())])
            zv, zt = _draw(g, y, strength), _draw(g, y, strength)
            if method == "twin":
                zv[y == 0, 0] += planted
                zt[y == 0, 0] += planted
            path = root / f"r{index}" / method / f"seed{seed}"
            record_run(path, method=method, seed=seed, y_true=y, logits=zt, val=(y, zv))
    return collect([root / f"r{index}"])


def _primary(runs):
    fronts = frontiers(runs, "ce", curves=False)
    return next(r for r in fronts.matched if r.method == "twin" and r.primary and r.method_offsets)


def test_exchangeable_methods_gain_nothing_and_are_rarely_marked(tmp_path):
    diffs, marked = [], 0
    for index in range(REPORTS):
        row = _primary(_report(tmp_path, index))
        diffs += [s.method_test_worst - s.reference_test_worst for s in row.per_seed]
        marked += row.worst_gain.p < 0.05 and row.worst_gain.mean > 0  # a mark, before Holm
    d = np.asarray(diffs)
    assert len(d) == 200
    assert abs(d.mean()) <= 2 * d.std(ddof=1) / np.sqrt(len(d))  # no bias under the null
    assert marked <= 0.05 * REPORTS


def test_a_planted_improvement_is_marked(tmp_path):
    row = _primary(_report(tmp_path, 0, planted=1.5))
    assert row.worst_gain.mean > 0.05 and row.worst_gain.p < 0.05
