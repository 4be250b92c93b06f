"""mr2.functional against the float64 loop references and hand-derived values."""

import pytest
import torch
import torch.nn.functional as F

import references as ref
from mr2 import functional as MF
from mr2.representation import representation_margin


def batch(b=24, k=5, d=6, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, k, (b,), generator=g)
    y[0] = k - 1  # make the largest class appear, keep some classes possibly absent
    return f, y


@pytest.mark.parametrize("p", [2.0, 5.0, 1.5])
def test_class_statistics_matches_loop(p):
    f, y = batch(k=7)
    y[y == 3] = 4  # class 3 absent
    count, norm_sq, dev = MF.class_statistics(f, y, 7, norm_p=p)
    r_count, r_norm, r_dev = ref.class_statistics(f, y, 7, p)
    torch.testing.assert_close(count, torch.tensor(r_count, dtype=f.dtype))
    torch.testing.assert_close(norm_sq, torch.tensor(r_norm, dtype=f.dtype))
    torch.testing.assert_close(dev, torch.tensor(r_dev, dtype=f.dtype))
    assert count[3] == 0 and norm_sq[3] == 0 and dev[3] == 0


def test_class_margins_matches_formula_and_mean_is_c_bar():
    norm_sq = torch.tensor([1.0, 4.0, 0.5, 9.0, 2.0], dtype=torch.float64)
    dev = torch.tensor([0.5, 1.0, 0.25, 3.0, 7.0], dtype=torch.float64)
    seen = torch.tensor([True, True, True, False, True])
    gamma = MF.class_margins(norm_sq, dev, seen, c_bar=1.7)
    expect = ref.margins(norm_sq.tolist(), dev.tolist(), seen.tolist(), 1.7)
    torch.testing.assert_close(gamma, torch.tensor(expect, dtype=torch.float64))
    assert gamma[3] == 1.7  # unseen -> c_bar
    torch.testing.assert_close(gamma[seen].mean(), torch.tensor(1.7, dtype=torch.float64))


def test_class_margins_degenerate_cases():
    none_seen = MF.class_margins(torch.ones(3), torch.ones(3), torch.zeros(3, dtype=torch.bool))
    assert torch.equal(none_seen, torch.ones(3))
    zero_energy = MF.class_margins(torch.zeros(3), torch.zeros(3), torch.ones(3, dtype=torch.bool))
    assert torch.equal(zero_energy, torch.ones(3))
    with pytest.raises(ValueError, match="c_bar"):
        MF.class_margins(torch.ones(3), torch.ones(3), torch.ones(3, dtype=torch.bool), c_bar=0)


def test_logit_margin_ce_matches_loop():
    f, y = batch(k=5)
    logits = f[:, :5] * 3
    gamma = torch.tensor([0.5, 1.0, 1.5, 2.0, 0.8], dtype=torch.float64)
    got = MF.logit_margin_cross_entropy(logits, y, gamma, reduction="none")
    expect = ref.logit_margin_ce(logits, y, gamma.tolist())
    torch.testing.assert_close(got, torch.tensor(expect, dtype=torch.float64))
    torch.testing.assert_close(MF.logit_margin_cross_entropy(logits, y, gamma), got.mean())
    torch.testing.assert_close(MF.logit_margin_cross_entropy(logits, y, gamma, "sum"), got.sum())


def test_unit_margins_give_exactly_cross_entropy():
    logits, y = torch.randn(32, 10), torch.randint(0, 10, (32,))
    got = MF.logit_margin_cross_entropy(logits, y, torch.ones(10), reduction="none")
    assert torch.equal(got, F.cross_entropy(logits, y, reduction="none"))
    # the fused mean of F.cross_entropy sums in another order: equal up to rounding
    mean = MF.logit_margin_cross_entropy(logits, y, torch.ones(10))
    torch.testing.assert_close(mean, F.cross_entropy(logits, y), rtol=1e-6, atol=0)


@pytest.mark.parametrize("t", [1.0, 0.5, 40.0])
def test_representation_margin_matches_loop(t):
    f, y = batch(b=20, k=3)
    y[5] = 7  # a class with a single member: no partner -> 0
    s_bar = 1.3
    got = MF.representation_margin_loss(f, y, s_bar, temperature=t, reduction="none")
    expect = torch.tensor(ref.representation_margin(f, y, s_bar, t), dtype=torch.float64)
    torch.testing.assert_close(got, expect)
    assert got[5] == 0


def test_representation_margin_with_partners_matches_rows_of_full_batch():
    """The gathered-batch path (rows vs a larger batch at an offset) equals the full batch."""
    f, y = batch(b=16, k=3)
    full = representation_margin(f, y, torch.tensor(0.7, dtype=f.dtype), 2.0)
    part = representation_margin(
        f[4:11], y[4:11], torch.tensor(0.7, dtype=f.dtype), 2.0, partners=(f, y, 4)
    )
    torch.testing.assert_close(part, full[4:11])


def test_representation_margin_no_overflow_far_apart():
    """Raw squared distances of order 1e6 would overflow exp in float32."""
    f = torch.randn(16, 64) * 300
    f.requires_grad_(True)
    y = torch.randint(0, 2, (16,))
    loss = MF.representation_margin_loss(f, y, s_bar=0.0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 1e5
    assert torch.isfinite(f.grad).all()


def test_representation_margin_gradcheck_symmetric_and_partners():
    f, y = batch(b=12, k=3, d=4)
    g, gy = batch(b=9, k=3, d=4, seed=1)
    f.requires_grad_(True)
    g.requires_grad_(True)
    s = torch.tensor(2.5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: representation_margin(x, y, s, 3.0), (f,))
    # rows at offset 2 inside a partner batch that also holds foreign rows: grads to both
    assert torch.autograd.gradcheck(
        lambda a, b: representation_margin(a, y[2:6], s, 3.0, (b, torch.cat([y[2:6], gy]), 0)),
        (
            f[2:6].detach().requires_grad_(True),
            torch.cat([f[2:6], g]).detach().requires_grad_(True),
        ),
    )


def test_representation_margin_double_backward_safe():
    """retain_graph + a second backward gives the same gradient (saved tensors untouched)."""
    f, y = batch(b=10, k=2)
    f.requires_grad_(True)
    loss = representation_margin(f, y, torch.tensor(1.0, dtype=f.dtype), 2.0).sum()
    (g1,) = torch.autograd.grad(loss, f, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, f)
    assert torch.equal(g1, g2)


def test_gradcheck_functional_terms():
    f, y = batch(b=10, k=3)
    f.requires_grad_(True)
    gamma = torch.tensor([0.7, 1.0, 1.3], dtype=torch.float64)
    w = torch.randn(6, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: MF.logit_margin_cross_entropy(x @ w, y, gamma), (f,))
    assert torch.autograd.gradcheck(
        lambda x: MF.representation_margin_loss(x, y, 0.9, temperature=3.0), (f,)
    )


def test_ema_merge_decay_one_is_exact_pooling():
    """A batch split in two merges (count-weighted) into the whole batch's statistics."""
    f, y = batch(b=30, k=4)
    k, norms = 4, (2.0,)

    def stats(ff, yy):
        count, sums = MF.class_feature_sums(ff, yy, k)
        mean = sums / count.clamp(min=1).unsqueeze(1)
        dev = MF.class_deviation_sums(ff, yy, mean, norms) / count.clamp(min=1).unsqueeze(1)
        return count, mean, dev

    c1, m1, d1 = stats(f[:13], y[:13])
    c2, m2, d2 = stats(f[13:], y[13:])
    cw, mw, dw = stats(f, y)
    w, m, d = MF.ema_merge(c1, m1, d1, c2, m2, d2, decay=1.0, norms=norms)
    torch.testing.assert_close(w, cw)
    torch.testing.assert_close(m, mw)
    torch.testing.assert_close(d, dw)


def test_ema_merge_decay_matches_weighted_reference_and_leaves_absent_classes():
    f, y = batch(b=30, k=4)
    y[:13][y[:13] == 2] = 1  # class 2 only in the second half
    y[13:][y[13:] == 3] = 0  # class 3 only in the first half
    decay, k = 0.6, 4
    zero = (
        torch.zeros(k, dtype=f.dtype),
        torch.zeros(k, 6, dtype=f.dtype),
        torch.zeros(k, 1, dtype=f.dtype),
    )
    state = zero
    for part in (slice(0, 13), slice(13, 30)):
        count, _, dev = MF.class_statistics(f[part], y[part], k)
        _, sums = MF.class_feature_sums(f[part], y[part], k)
        mean = sums / count.clamp(min=1).unsqueeze(1)
        state = MF.ema_merge(*state, count, mean, dev.unsqueeze(1), decay=decay)
    weights = [decay if i < 13 else 1.0 for i in range(30)]
    for c, (w, mu, var) in ref.weighted_statistics(f, y, weights, k).items():
        # an absent class keeps its weight undecayed (class 3: 5 * 0.6 would be wrong)
        expect_w = w if c != 3 else w / decay
        torch.testing.assert_close(state[0][c].item(), expect_w)
        torch.testing.assert_close(state[1][c], torch.tensor(mu, dtype=f.dtype))
        torch.testing.assert_close(state[2][c, 0].item(), var)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: MF.class_statistics(torch.randn(4), torch.zeros(4, dtype=torch.long), 2), "2-D"),
        (lambda: MF.class_statistics(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 2), "targets"),
        (
            lambda: MF.class_statistics(torch.randn(0, 3), torch.zeros(0, dtype=torch.long), 2),
            "empty",
        ),
        (
            lambda: MF.logit_margin_cross_entropy(
                torch.randn(3, 2), torch.zeros(3).long(), torch.tensor([1.0, -1.0])
            ),
            "> 0",
        ),
        (
            lambda: MF.logit_margin_cross_entropy(
                torch.randn(3, 2), torch.zeros(3).long(), torch.ones(3)
            ),
            "margins",
        ),
        (
            lambda: MF.logit_margin_cross_entropy(
                torch.full((3, 2), float("nan")), torch.zeros(3).long(), torch.ones(2)
            ),
            "NaN",
        ),
        (
            lambda: MF.representation_margin_loss(
                torch.randn(3, 2), torch.zeros(3).long(), 1.0, temperature=0
            ),
            "temperature",
        ),
        (lambda: MF.representation_margin_loss(torch.randn(3, 2), torch.zeros(3), 1.0), "integer"),
        (
            lambda: MF.representation_margin_loss(torch.randn(3, 2), torch.zeros(4).long(), 1.0),
            "batch sizes differ",
        ),
        (
            lambda: MF.representation_margin_loss(
                torch.randn(3, 2), torch.zeros(3).long(), float("inf")
            ),
            "s_bar",
        ),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("decay", [1.5, -0.1])
def test_ema_merge_refuses_a_decay_outside_0_1(decay):
    k, d = 3, 2
    z = torch.zeros(k)
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\]"):
        MF.ema_merge(
            z,
            torch.zeros(k, d),
            torch.zeros(k, 1),
            z + 1,
            torch.ones(k, d),
            torch.zeros(k, 1),
            decay,
        )


def test_a_class_with_all_zero_features_gets_a_floored_margin():
    # a = 0, 1, 8: cube roots 0, 1, 2 (mean 1); the zero one floored at 0.1 of the mean,
    # then normalised to mean 1: [0.1, 1, 2] * 3 / 3.1 (derived by hand)
    gamma = MF.class_margins(
        torch.tensor([0.0, 1.0, 8.0]), torch.zeros(3), seen=torch.ones(3, dtype=torch.bool)
    )
    assert torch.allclose(gamma, torch.tensor([0.1, 1.0, 2.0]) * 3 / 3.1)
    assert torch.isclose(gamma.mean(), torch.tensor(1.0))
    # through the loss: the zero-feature class's samples no longer blow up
    from mr2 import MR2Loss

    loss_fn = MR2Loss(3, lambda_rep=0.0, ema_decay=0.0)
    feats = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]).repeat(4, 1)
    y = torch.tensor([0, 1, 2]).repeat(4)
    logits = torch.randn(12, 3, requires_grad=True)
    loss_fn(logits, feats, y).backward()  # first step: statistics set
    logits.grad = None
    loss = loss_fn(logits, feats, y)
    loss.backward()
    assert loss.item() < 100 and logits.grad.abs().max() < 100
