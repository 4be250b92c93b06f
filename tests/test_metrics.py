"""mr2.metrics against scikit-learn, SciPy and hand-computed values."""

import math
import statistics

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

import ddp
import ddp_workers as w
from mr2.metrics import (
    ClasswiseAccuracy,
    bootstrap_ci,
    classwise_accuracy,
    confusion_counts,
    disparity_summary,
    mean_std,
    paired_bootstrap,
    paired_comparison,
    sign_flip_p_value,
    sign_test_p_value,
)


def predictions(n=500, k=7, seed=0, p_right=0.7):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, k, (n,), generator=g)
    noise = torch.randint(0, k, (n,), generator=g)
    keep = torch.rand(n, generator=g) < p_right * (1 - targets / (2 * k))  # class-dependent
    return torch.where(keep, targets, noise), targets


def test_against_sklearn():
    preds, targets = predictions()
    k = 7
    conf = confusion_counts(preds, targets, k)
    np.testing.assert_array_equal(conf.numpy(), confusion_matrix(targets, preds, labels=range(k)))
    acc = classwise_accuracy(preds, targets, k)
    np.testing.assert_allclose(
        acc.numpy(), recall_score(targets, preds, average=None, labels=range(k))
    )
    assert acc.mean().item() == pytest.approx(balanced_accuracy_score(targets, preds))


def test_logits_are_argmaxed():
    logits = torch.randn(50, 4)
    targets = torch.randint(0, 4, (50,))
    assert torch.equal(
        classwise_accuracy(logits, targets, 4), classwise_accuracy(logits.argmax(1), targets, 4)
    )


def test_missing_class_is_nan_and_flagged():
    preds, targets = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0])
    acc = classwise_accuracy(preds, targets, 3)
    assert acc[0] == pytest.approx(2 / 3) and acc[1] == 1 and math.isnan(acc[2])
    metric = ClasswiseAccuracy(3)
    metric.update(preds, targets)
    result = metric.compute()
    assert result.missing.tolist() == [False, False, True]
    assert result.overall == pytest.approx(0.75)


def test_stateful_is_batch_split_invariant_and_resets():
    preds, targets = predictions(n=203)
    metric = ClasswiseAccuracy(7)
    for chunk in torch.arange(203).split(17):
        metric.update(preds[chunk], targets[chunk])
    result = metric.compute()
    assert torch.equal(result.accuracy, classwise_accuracy(preds, targets, 7))
    assert result.overall == pytest.approx(accuracy_score(targets, preds))
    metric.reset()
    assert metric.confusion.sum() == 0


@pytest.mark.ddp
def test_distributed_counts_are_summed_not_averaged():
    ranks = ddp.run(w.metric_worker, 2, [13, 40])  # uneven shards: a mean of means would differ
    full = classwise_accuracy(ranks[0]["preds"], ranks[0]["targets"], 5)
    for r in ranks:
        assert torch.equal(r["accuracy"], full)
        assert r["overall"] == pytest.approx(accuracy_score(r["targets"], r["preds"]))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.tensor([0, 1]), torch.tensor([0, 3]), 3), "targets"),
        ((torch.tensor([0, 5]), torch.tensor([0, 1]), 3), "predictions"),
        ((torch.tensor([0, 1]), torch.tensor([0, 1, 1]), 3), "batch sizes"),
        ((torch.randn(2, 4), torch.tensor([0, 1]), 3), "columns"),
        ((torch.full((2, 3), float("nan")), torch.tensor([0, 1]), 3), "NaN"),
        ((torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), 3), "integer"),
        ((torch.tensor([0, 1]), torch.tensor([0, 1]), 0), "num_classes"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        classwise_accuracy(*args)


def test_summary_hand_values_k10():
    acc = np.array([0.95, 0.35, 0.80, 0.60, 0.90, 0.50, 0.70, 1.00, 0.20, 0.65])
    s = disparity_summary(acc)
    # ranked: 1.0(7) .95(0) .9(4) .8(2) | .7(6) .65(9) .6(3) | .5(5) .35(1) .2(8): 4 / 3 / 3
    assert s.groups == {"easy": [7, 0, 4, 2], "medium": [6, 9, 3], "hard": [5, 1, 8]}
    assert s.easy == pytest.approx((1 + 0.95 + 0.9 + 0.8) / 4)
    assert s.medium == pytest.approx((0.7 + 0.65 + 0.6) / 3)
    assert s.hard == pytest.approx((0.5 + 0.35 + 0.2) / 3)
    assert (s.worst_class, s.worst_class_index) == (0.2, 8)
    assert s.worst_fraction_mean == pytest.approx(0.2)  # ceil(0.1 * 10) = 1 class
    assert s.std == pytest.approx(statistics.pstdev(acc.tolist()))
    assert s.gap == pytest.approx(0.8) and s.ratio == pytest.approx(0.2)
    assert s.geometric_mean == pytest.approx(math.prod(acc.tolist()) ** 0.1)
    assert s.cv == pytest.approx(statistics.pstdev(acc.tolist()) / statistics.fmean(acc.tolist()))
    assert s.overall == pytest.approx(acc.mean()) == s.mean_class


def test_summary_reference_counts_missing_and_k11():
    acc = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, np.nan])
    ref = acc[::-1].copy()  # class 0 is the reference's easiest
    ref[0] = 1.0
    counts = np.array([10, 10, 10, 10, 10, 10, 10, 10, 10, 30, 0])
    s = disparity_summary(acc, reference=ref, class_counts=counts, worst_fraction=0.25)
    assert s.missing == [10] and s.num_classes == 10
    assert s.groups["easy"] == [0, 1, 2, 3]  # thirds of the 10 present classes by reference
    assert s.easy == pytest.approx(0.25)
    assert s.overall == pytest.approx((np.nansum(acc[:10] * counts[:10])) / 120)
    assert s.worst_fraction_mean == pytest.approx((0.1 + 0.2 + 0.3) / 3)  # ceil(2.5) = 3
    full = disparity_summary(np.linspace(0, 1, 11))
    assert [len(full.groups[g]) for g in ("easy", "medium", "hard")] == [4, 4, 3]
    assert full.geometric_mean == 0.0


def test_summary_bad_input():
    with pytest.raises(ValueError, match="all NaN"):
        disparity_summary([np.nan, np.nan])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        disparity_summary([0.5, 1.5])
    with pytest.raises(ValueError, match="reference"):
        disparity_summary([0.5, 0.5], reference=[1.0])


def test_bootstrap_ci_matches_binomial_standard_error():
    """One class, accuracy p over n samples: the CI of 'overall' is about p ± 1.96 sqrt(p q / n)."""
    n, p = 2000, 0.7
    targets = np.zeros(n, dtype=np.int64)
    preds = np.where(np.arange(n) < p * n, 0, 1)
    ci = bootstrap_ci(preds, targets, 2, n_boot=2000, seed=1)
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    assert ci.estimate["overall"] == pytest.approx(p)
    assert ci.lower["overall"] == pytest.approx(p - half, abs=0.004)
    assert ci.upper["overall"] == pytest.approx(p + half, abs=0.004)


def test_bootstrap_ci_degenerate_and_contains_estimate():
    preds, targets = predictions(n=300)
    ci = bootstrap_ci(targets, targets, 7, n_boot=50)
    assert ci.lower["hard"] == ci.upper["hard"] == 1.0
    ci = bootstrap_ci(preds, targets, 7, n_boot=300)
    for f in ("overall", "hard", "worst_class", "std"):
        assert ci.lower[f] <= ci.estimate[f] <= ci.upper[f]
    unstrat = bootstrap_ci(preds, targets, 7, n_boot=300, stratified=False)
    assert unstrat.lower["overall"] < ci.estimate["overall"] < unstrat.upper["overall"]


def test_mean_std_and_tests_against_scipy():
    ms = mean_std([0.7, 0.72, 0.75])
    assert ms.mean == pytest.approx(statistics.fmean([0.7, 0.72, 0.75]))
    assert ms.std == pytest.approx(statistics.stdev([0.7, 0.72, 0.75]))
    assert str(ms) == "72.33 ± 2.52"
    assert sign_flip_p_value([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    gains = [0.1] * 9 + [-0.2]
    assert sign_test_p_value(gains) == pytest.approx(2 * (1 + 10) / 2**10)  # by hand: P(<= 1 of 10)
    assert sign_test_p_value([1.0] * 9 + [-1.0] * 3) == pytest.approx(2 * 299 / 4096)
    assert sign_test_p_value([1.0, -1.0, 0.0]) == 1.0  # zeros dropped, 1 vs 1
    assert sign_test_p_value([0.0, 0.0]) == 1.0


def test_paired_comparison_hand_example():
    base = np.array([[0.9, 0.8, 0.6, 0.5, 0.3, 0.2], [0.92, 0.78, 0.62, 0.48, 0.32, 0.18]])
    method = base + np.array(
        [[-0.02, 0.0, 0.01, 0.02, 0.05, 0.06], [-0.01, 0.0, 0.01, 0.02, 0.04, 0.07]]
    )
    cmp = paired_comparison(method, base)
    assert cmp.groups["hard"] == [4, 5]
    assert cmp.hard_gain_per_seed == pytest.approx([0.055, 0.055])
    assert cmp.group_gain["easy"] == pytest.approx(-0.0075)
    assert min(cmp.p_holm) > 0.05  # 2 seeds: no class significant after Holm
    assert cmp.ranking.startswith("ranked on the reference's other seeds' test")
    assert not cmp.unbiased  # test only: gains unbiased, levels not
    assert cmp.p_seeds == pytest.approx(0.5) == cmp.p_seeds_min  # 2 seeds: the smallest p
    assert cmp.worst_gain_per_seed == pytest.approx([0.2 + 0.06 - 0.2, 0.18 + 0.07 - 0.18])


def test_holm_and_class_intervals_by_hand():
    from scipy import stats

    from mr2.metrics import class_intervals, holm, min_sign_flip_p

    # Holm: sorted 0.01, 0.02, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 1 x 0.04)
    assert holm([0.04, 0.01, np.nan, 0.02]).tolist()[:2] == pytest.approx([0.04, 0.03])
    assert holm([0.04, 0.01, np.nan, 0.02])[3] == pytest.approx(0.04)
    assert np.isnan(holm([0.5, np.nan])[1]) and holm([0.5, 0.9]).tolist() == [1.0, 1.0]
    assert [min_sign_flip_p(n) for n in (1, 2, 5, 6)] == [1.0, 0.5, 0.0625, 0.03125]
    d = np.array([[0.01, 0.02, 0.0], [0.03, 0.02, 0.0], [0.02, 0.02, 0.01]])
    p, lo, hi = class_intervals(d, alpha=0.05)
    t = 0.02 / (0.01 / np.sqrt(3))  # class 0: mean 0.02, sd 0.01
    p0 = 2 * stats.t.sf(t, 2)
    p2 = stats.ttest_1samp(d[:, 2], 0).pvalue
    small, large = sorted([p0, p2])
    expect = {small: min(1, 2 * small), large: max(min(1, 2 * small), large)}
    assert p[0] == pytest.approx(expect[p0]) and p[2] == pytest.approx(expect[p2])
    assert np.isnan(p[1])  # no spread: no test
    half = stats.t.ppf(1 - 0.05 / 6, 2) * 0.01 / np.sqrt(3)  # Bonferroni over K = 3
    assert (lo[0], hi[0]) == pytest.approx((0.02 - half, 0.02 + half))


def test_paired_bootstrap_crossfits_the_hard_third():
    """A baseline that fails the class its half A calls hard only on half A: ranked and
    scored on the same samples the gain would look large; cross-fitted it does not."""
    from mr2.metrics.hard import crossfit_halves

    t = np.repeat(np.arange(3), 40)
    in_a = crossfit_halves(t)
    base = t.copy()
    base[(t == 0) & in_a] = 1  # class 0: wrong on all of half A, right on half B
    base[(t == 1) & ~in_a] = 2  # class 1: wrong on all of half B
    res = paired_bootstrap(t, base, t, 3, n_boot=200)
    # half A ranks class 0 hardest -> scored on half B: gain 0; half B ranks class 1 ->
    # scored on half A: gain 0. Test-ranked it would be 0.5 (class 0 at 50 %).
    assert res.gain == pytest.approx(0.0)
    given = paired_bootstrap(t, base, t, 3, reference=[0.1, 0.9, 0.9], n_boot=200)
    assert given.gain == pytest.approx(0.5)


def test_paired_bootstrap():
    preds, targets = predictions(n=400)
    same = paired_bootstrap(preds, preds, targets, 7, n_boot=200)
    assert same.gain == same.lower == same.upper == 0.0
    better = paired_bootstrap(targets, preds, targets, 7, n_boot=200)  # perfect vs imperfect
    assert better.gain > 0 and better.lower > 0 and better.p_one_sided == 0.0


def test_p_values_are_nan_without_data():
    from mr2.metrics import sign_flip_p_value, sign_test_p_value

    assert np.isnan(sign_flip_p_value([])) and np.isnan(sign_flip_p_value([0.1, np.nan]))
    assert np.isnan(sign_flip_p_value([0.1, 0.2, np.inf])) and np.isnan(
        sign_flip_p_value([-np.inf])
    )
    assert np.isnan(sign_test_p_value([]))
    assert sign_test_p_value([np.nan, 0.2, 0.3]) == 0.5  # NaN dropped: 2 of 2 positive
    assert sign_flip_p_value([0.1, 0.2]) == 0.5  # 2 seeds: the smallest p is 2 / 4


def test_seeds_for_power_matches_published_sample_sizes():
    from mr2.metrics import seeds_for_power

    # one-sample / paired t-test, two-sided alpha 0.05, power 0.8 (Cohen 1988; G*Power):
    # dz = 0.2 -> 199, 0.5 -> 34, 0.8 -> 15, 1.0 -> 10; power 0.9 at dz = 0.5 -> 44
    for dz, n in ((0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)):
        assert seeds_for_power(1.0, dz) == n
        assert seeds_for_power(2.0, 2 * dz) == n  # only the ratio matters
    assert seeds_for_power(1.0, 0.5, power=0.9) == 44
    assert seeds_for_power(1.0, 0.01, max_seeds=50) == 51
    with pytest.raises(ValueError, match="> 0"):
        seeds_for_power(0.0, 1.0)


def test_sign_flip_p_value_by_hand_and_above_the_exact_range():
    # |sum| = 1.1 of 1.5 in total: flipping a subset of sum <= 0.2 (3 ways) or >= 1.3
    # (their complements) is as extreme: 6 of 2^5
    assert sign_flip_p_value([0.5, -0.2, 0.3, 0.4, 0.1]) == pytest.approx(6 / 32)
    assert sign_flip_p_value([0.7]) == 1.0  # one seed: +0.7 and -0.7 are as extreme
    d = np.random.default_rng(3).normal(0.4, 1.0, 17)  # 17 values: a Monte Carlo of 2^16
    signs = 1.0 - 2.0 * ((np.arange(2**17)[:, None] >> np.arange(17)) & 1)
    exact = np.mean(np.abs((signs * d).mean(1)) >= abs(d.mean()) - 1e-12)
    assert sign_flip_p_value(d) == pytest.approx(exact, abs=0.01)


def test_bootstrap_ci_crossfits_the_groups_without_a_reference():
    """Classes 0 and 1 each fail on exactly one half of their samples: ranked on the whole
    test set one of them is "hard" at 50 %; cross-fitted, each half's hardest class is
    scored on the other half, where it is always right."""
    from mr2.metrics.hard import crossfit_halves

    t = np.repeat(np.arange(3), 40)
    in_a = crossfit_halves(t)
    preds = t.copy()
    preds[(t == 0) & in_a] = 2
    preds[(t == 1) & ~in_a] = 2
    ci = bootstrap_ci(preds, t, 3, n_boot=100)
    assert ci.estimate["hard"] == pytest.approx(1.0)
    assert ci.lower["hard"] == pytest.approx(1.0) == ci.upper["hard"]  # resampled in halves
    given = bootstrap_ci(preds, t, 3, reference=[0.1, 0.9, 1.0], n_boot=50)
    assert given.estimate["hard"] == pytest.approx(0.5)


def test_classwise_accuracy_takes_lists_and_numpy_labels():
    want = classwise_accuracy(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1]), 3)
    for preds, targets in (
        ([0, 1, 1, 2], [0, 0, 1, 1]),
        (np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1], dtype=np.int32)),
    ):
        assert torch.allclose(classwise_accuracy(preds, targets, 3), want, equal_nan=True)
    with pytest.raises(ValueError, match="integer class indices"):
        classwise_accuracy([0, 1], np.array([0.7, 1.0]), 2)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0.7, 1.0, 0.0, 1.0]),
        np.array([0, 1, np.nan, 1]),
        np.array([0, -1, 1, 1]),
        np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7]]),
    ],
)
def test_bootstrap_and_diagnose_refuse_labels_that_are_not_class_indices(labels, tmp_path):
    from mr2.engine.diagnose import run_diagnose

    preds = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"class indices|must be >= 0|not logits|1-D"):
        bootstrap_ci(preds, labels, 2, n_boot=10)
    path = tmp_path / "f.npz"
    np.savez(path, features=np.ones((4, 3)), labels=labels, preds=preds)
    with pytest.raises(ValueError, match=r"class indices|must be >= 0|1-D"):
        run_diagnose(None, str(path))


def test_sign_flip_p_values_treat_exact_ties_exactly():
    """Against an enumeration in exact fractions: differences in tenths whose flipped sums
    tie the observed one in exact arithmetic but not in floating point (SciPy's
    permutation_test gave 2 of these 200 cases too small)."""
    import itertools
    from fractions import Fraction

    rng = np.random.default_rng(0)
    for _ in range(200):
        tenths = rng.integers(-6, 7, rng.integers(3, 9))
        exact = [Fraction(int(t), 10) for t in tenths]
        observed = abs(sum(exact))
        flips = list(itertools.product([1, -1], repeat=len(exact)))
        count = sum(
            abs(sum(s * v for s, v in zip(f, exact, strict=True))) >= observed for f in flips
        )
        assert sign_flip_p_value(tenths / 10) == count / len(flips)
    assert sign_flip_p_value(np.ones(20)) == pytest.approx(1 / 65537)  # Monte Carlo, never 0
