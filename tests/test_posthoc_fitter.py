"""The offsets fitter (``mr2.posthoc.fit``, ``mr2.posthoc.ascent``) against an independent
exact coordinate ascent (``references``) on synthetic and real logits: it finds what exists
at zero slack, spends no accuracy the objective does not need, and never ends below the
accuracy it is asked to keep."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from mr2.posthoc import ClassOffsets
from references import coordinate_ascent, offsets_by_exact_coordinate_ascent

pytestmark = pytest.mark.unit


def synthetic(k: int, per_class: int, seed: int, bias: float = 1.0):
    """Logits of a k-class model with a per-class logit bias (some classes favoured)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), per_class)
    z = rng.normal(size=(len(y), k))
    z[np.arange(len(y)), y] += rng.uniform(0.5, 3.0, size=k)[y]
    z += rng.normal(scale=bias, size=k)  # the bias offsets can undo
    return z.astype(np.float32), y


def digits_logits(seed: int):
    """Validation logits of a logistic regression on scikit-learn's digits (real data),
    trained on a third so that its classes differ."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    train, val = order[:400], order[400:1200]
    model = LogisticRegression(C=0.002, max_iter=200).fit(x[train] / 16, y[train])
    return model.decision_function(x[val] / 16).astype(np.float32), y[val]


CASES = [("synthetic", 5, 0), ("synthetic", 10, 1), ("synthetic", 20, 2), ("digits", 10, 0)]


def _case(kind: str, k: int, seed: int):
    return synthetic(k, 30, seed) if kind == "synthetic" else digits_logits(seed)


@pytest.mark.parametrize("kind,k,seed", CASES)
def test_worst_class_matches_the_exact_reference_at_zero_slack(kind, k, seed):
    z, y = _case(kind, k, seed)
    level = float((z.argmax(1) == y).mean())  # the user's own accuracy: no slack
    _, recall, _ = offsets_by_exact_coordinate_ascent(z, y, "worst", min_overall=level)
    fitted = ClassOffsets("worst", min_overall=level).fit(z, y)
    assert fitted.after.overall >= level - 1e-12
    assert fitted.after.worst >= recall.min() - 0.01  # within a point of the reference
    if recall.min() > fitted.before.worst:  # moving is possible: the fit moves
        assert fitted.after.worst > fitted.before.worst


@pytest.mark.parametrize("kind,k,seed", CASES)
def test_hard_group_matches_the_exact_reference(kind, k, seed):
    z, y = _case(kind, k, seed)
    level = float((z.argmax(1) == y).mean()) - 0.01
    hard = [0, 1, 2][: max(1, k // 3)]
    mask = np.zeros(k, dtype=bool)
    mask[hard] = True
    _, recall, _ = offsets_by_exact_coordinate_ascent(z, y, "hard", mask, min_overall=level)
    fitted = ClassOffsets("hard", min_overall=level, hard_classes=hard).fit(z, y)
    assert fitted.after.overall >= level - 1e-12
    assert fitted.after.hard >= recall[mask].mean() - 0.01


@pytest.mark.parametrize("seed", range(4))
def test_unconstrained_fits_spend_no_accuracy_the_worst_class_does_not_need(seed):
    """The best overall accuracy among offsets that reach the fit's worst class, found by
    the reference with that worst class as its floor... restated: the reference maximises
    overall subject to worst >= the fit's, starting from the fit's offsets."""
    z, y = synthetic(10, 30, 10 + seed)
    fitted = ClassOffsets("worst").fit(z, y)
    worst = fitted.after.worst
    assert worst >= offsets_by_exact_coordinate_ascent(z, y, "worst")[1].min() - 0.01
    best_overall = _best_overall_at(z, y, worst, fitted.offsets.numpy())
    assert fitted.after.overall >= best_overall - 0.01


def _best_overall_at(z, y, worst, start):
    """Overall accuracy by exact coordinate ascent subject to worst class >= ``worst``."""
    b = coordinate_ascent(
        z, y, lambda recall, overall: (overall,) if recall.min() >= worst - 1e-12 else None, start
    )
    return float(((z.astype(np.float64) + b).argmax(1) == y).mean())


def test_offsets_never_end_below_the_accuracy_asked_for_or_zero_offsets():
    for seed in range(6):
        z, y = synthetic(8, 20, 100 + seed, bias=2.0)
        zero = float((z.argmax(1) == y).mean())
        for level in (zero - 0.05, zero, zero + 0.02):
            try:
                fitted = ClassOffsets("worst", min_overall=level).fit(z, y)
            except ValueError as err:
                assert "no offsets reach" in str(err) and level > zero
                continue
            assert fitted.after.overall >= level - 1e-12
            assert fitted.after.worst >= fitted.before.worst or level > zero


def test_the_tail_objective_lifts_the_mean_of_the_weakest_classes():
    z, y = synthetic(40, 25, 7)
    fitted = ClassOffsets("tail", tail_fraction=0.1).fit(torch.from_numpy(z), y)
    assert fitted.after.tail(0.1) > fitted.before.tail(0.1) + 0.05
    weakest = np.sort(fitted.after.recall.numpy())[:4].mean()  # ceil(0.1 * 40) = 4 classes
    assert fitted.after.tail(0.1) == pytest.approx(weakest)
