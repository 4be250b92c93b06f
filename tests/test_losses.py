"""Each baseline loss against a slow reference, a hand-derived value or PyTorch itself."""

import math

import pytest
import torch
import torch.nn.functional as F

import references as ref
from mr2 import losses


def batch(b=32, k=5, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, generator=g, dtype=torch.float64)
    y = torch.arange(b).remainder(k)[torch.randperm(b, generator=g)]
    return f @ torch.randn(d, k, generator=g, dtype=torch.float64) * 2, f, y


def test_cross_entropy_is_torch():
    z, _f, y = batch()
    loss = losses.create("ce", num_classes=5)
    torch.testing.assert_close(loss(z, None, y), F.cross_entropy(z, y))


def test_label_smoothing_matches_torch():
    z, _, y = batch()
    loss = losses.create("label_smoothing", num_classes=5, smoothing=0.2)
    torch.testing.assert_close(loss(z, None, y), F.cross_entropy(z, y, label_smoothing=0.2))


def test_focal_matches_loop_and_gamma_zero_is_ce():
    z, _, y = batch()
    got = losses.focal_loss(z, y, 2.0)
    torch.testing.assert_close(got, torch.tensor(ref.focal(z, y, 2.0), dtype=z.dtype))
    torch.testing.assert_close(
        losses.focal_loss(z, y, 0.0), F.cross_entropy(z, y, reduction="none")
    )


def test_ldam_hand_margins_and_balanced_fixed_margin():
    loss = losses.LDAMLoss(3, class_counts=[100, 16, 1], max_margin=0.5, reduction="none")
    # n^(-1/4) = 1/sqrt(10), 1/2, 1 -> margins 0.5 * those / 1
    torch.testing.assert_close(loss.margins, torch.tensor([0.5 / math.sqrt(10), 0.25, 0.5]))
    z = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    got = loss(z, None, torch.tensor([1]))
    expect = -torch.log_softmax(torch.tensor([2.0, 0.75, 0.0], dtype=torch.float64), 0)[1]
    torch.testing.assert_close(got, expect.unsqueeze(0))
    balanced = losses.create("ldam", num_classes=3)
    torch.testing.assert_close(balanced.margins, torch.full((3,), 0.5))


@pytest.mark.parametrize("name", ["logit_adjustment", "balanced_softmax", "vs"])
def test_count_based_losses_reduce_to_ce_on_balanced_data(name):
    z, _, y = batch()
    torch.testing.assert_close(
        losses.create(name, num_classes=5)(z, None, y), F.cross_entropy(z, y)
    )
    torch.testing.assert_close(
        losses.create(name, num_classes=5, class_counts=[7] * 5)(z, None, y), F.cross_entropy(z, y)
    )


def test_logit_adjustment_and_vs_with_counts_hand():
    counts = [60, 30, 10]
    pi = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    z, y = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64), torch.tensor([2])
    la = losses.LogitAdjustment(3, class_counts=counts, tau=1.5)
    torch.testing.assert_close(la(z, None, y), F.cross_entropy(z + 1.5 * pi.log(), y))
    bs = losses.BalancedSoftmax(3, class_counts=counts)
    torch.testing.assert_close(bs(z, None, y), F.cross_entropy(z + torch.tensor(counts).log(), y))
    vs = losses.VSLoss(3, class_counts=counts, gamma=0.5, tau=1.0)
    scales = (torch.tensor(counts, dtype=torch.float64) / 60) ** 0.5
    torch.testing.assert_close(vs(z, None, y), F.cross_entropy(z * scales + pi.log(), y))


def test_gce_hand_and_small_q_tends_to_ce():
    z, y = torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([0])
    p = math.exp(1) / (math.exp(1) + 1)
    got = losses.generalized_cross_entropy(z, y, 0.7)
    torch.testing.assert_close(got, torch.tensor([(1 - p**0.7) / 0.7], dtype=torch.float64))
    zz, _, yy = batch()
    torch.testing.assert_close(
        losses.generalized_cross_entropy(zz, yy, 1e-6),
        F.cross_entropy(zz, yy, reduction="none"),
        rtol=1e-5,
        atol=1e-5,
    )


def test_cdb_weights_hand_and_refresh():
    w = losses.cdb_weights(torch.tensor([0.9, 0.5, float("nan"), 1.0]), tau=2.0)
    # difficulties .1 .5 (mean .5 for NaN... of known: (.1 + .5 + 0) / 3 = .2) 0 -> squared
    d = torch.tensor([0.01, 0.25, 0.04, 0.0], dtype=torch.float64)
    torch.testing.assert_close(w, d * 4 / d.sum())
    loss = losses.CDBLoss(4, tau=2.0, reduction="none")
    z, y = torch.randn(8, 4, dtype=torch.float64), torch.arange(8) % 4
    torch.testing.assert_close(loss(z, None, y), F.cross_entropy(z, y, reduction="none"))
    loss.update_difficulty(torch.tensor([0.9, 0.5, float("nan"), 1.0]))
    expect = w[y] * F.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(loss(z, None, y), expect)
    assert torch.equal(losses.cdb_weights(torch.ones(3), 1.0), torch.ones(3, dtype=torch.float64))


def test_group_dro_update_and_objective_hand():
    z, _, y = batch(b=12, k=3)
    y[y == 2] = 1  # class 2 absent from the batch
    loss = losses.GroupDRO(3, step_size=0.5)
    ce = F.cross_entropy(z, y, reduction="none")
    group = [ce[y == g].mean().item() if (y == g).any() else 0.0 for g in range(3)]
    q = torch.tensor([math.exp(0.5 * g) / 3 for g in group], dtype=torch.float64)
    q = q / q.sum()
    got = loss(z, None, y)
    torch.testing.assert_close(loss.q.double(), q, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got, sum(q[g] * group[g] for g in range(3)), rtol=1e-6, atol=1e-7)
    before = loss.q.clone()
    loss.eval()(z, None, y)
    assert torch.equal(loss.q, before)


def test_center_loss_value_and_center_update_hand():
    f = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    z, y = torch.zeros(3, 2, dtype=torch.float64), torch.tensor([0, 0, 1])
    loss = losses.CenterLoss(2, lambda_center=2.0, alpha=0.5, reduction="none").double()
    got = loss(z, f, y)  # centers start at 0
    expect = math.log(2) + 0.5 * 2.0 * f.square().sum(1)
    torch.testing.assert_close(got, expect)
    # c_0 -= 0.5 * (2 * 0 - [4, 0]) / 3 ; c_1 -= 0.5 * (0 - [0, 2]) / 2
    torch.testing.assert_close(
        loss.centers, torch.tensor([[2 / 3, 0.0], [0.0, 0.5]], dtype=torch.float64)
    )


def test_supcon_matches_loop():
    _, f, y = batch(b=14, k=4)
    y[3] = 9 % 4
    got = losses.supervised_contrastive(f, y, 0.5)
    torch.testing.assert_close(got, torch.tensor(ref.supcon(f, y, 0.5), dtype=f.dtype))
    loss = losses.SupConLoss(4, lambda_supcon=0.3, temperature=0.5)
    z = torch.randn(14, 4, dtype=torch.float64)
    torch.testing.assert_close(loss(z, f, y), F.cross_entropy(z, y) + 0.3 * got.mean())


def test_sample_weights_are_a_weighted_mean():
    z, _, y = batch()
    w = torch.rand(len(y), dtype=torch.float64)
    ce = F.cross_entropy(z, y, reduction="none")
    loss = losses.create("ce", num_classes=5)
    torch.testing.assert_close(loss(z, None, y, sample_weight=w), (w * ce).sum() / w.sum())
    summed = losses.create("ce", num_classes=5, reduction="sum")
    torch.testing.assert_close(summed(z, None, y, sample_weight=w), (w * ce).sum())
    # integer upweighting equals duplicating the samples (JTT's definition)
    w2 = torch.ones(len(y), dtype=torch.float64)
    w2[:5] = 3
    dup = torch.cat([torch.arange(len(y)), torch.arange(5), torch.arange(5)])
    torch.testing.assert_close(loss(z, None, y, sample_weight=w2), loss(z[dup], None, y[dup]))


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown loss 'nope'; available: .*mr2"):
        losses.create("nope", num_classes=3)
    with pytest.raises(ValueError, match=r"does not take option\(s\) \[.gama.\]"):
        losses.create("focal", num_classes=3, gama=2.0)
    assert losses.create("mr2_logit", num_classes=3, c_bar=2.0).c_bar == 2.0
    assert losses.create("mr2_logit", num_classes=3).lambda_rep == 0.0
    assert losses.create("mr2_rep", num_classes=3).logit_margins is False
    assert "gamma" in losses.options("focal")
    with pytest.raises(ValueError, match="smoothing"):
        losses.create("label_smoothing", num_classes=3, smoothing=1.0)
    with pytest.raises(ValueError, match="class_counts"):
        losses.create("logit_adjustment", num_classes=3, class_counts=[1, 0, 2])


def test_ce_temperature_equals_mr2_with_uniform_margins():
    z, f, y = batch()
    ce = losses.create("ce", num_classes=5, temperature=0.5)
    torch.testing.assert_close(ce(z, None, y), F.cross_entropy(z / 0.5, y))
    mr2 = losses.create("mr2_logit", num_classes=5, c_bar=0.5).eval()  # no statistics: all c_bar
    torch.testing.assert_close(mr2(z, f, y), ce(z, None, y))
    with pytest.raises(ValueError, match="temperature"):
        losses.create("ce", num_classes=5, temperature=0.0)
    control = losses.create("ce_temperature", num_classes=5, temperature=0.25)  # own method name
    torch.testing.assert_close(control(z, None, y), F.cross_entropy(z / 0.25, y))
    assert "temperature" in losses.options("ce_temperature")


@pytest.mark.parametrize("name", ["ce", "focal", "mr2"])
def test_a_torch_style_call_is_answered_with_the_right_order(name):
    """``loss(logits, y)`` as torch's losses are called: a TypeError that shows mr2's order
    (logits, features, targets), not Python's bare "missing argument"."""
    loss = losses.create(name, num_classes=3)
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    with pytest.raises(TypeError, match=r"called as loss\(logits, features, targets\)"):
        loss(logits, y)
    if name != "mr2":  # a loss without features takes None in their place
        assert torch.isfinite(loss(logits, None, y))
