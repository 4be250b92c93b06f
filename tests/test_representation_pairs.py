"""The pair-list form of the representation term (CPU, many classes) against the Gram form
and the float64 loop reference."""

import pytest
import torch

import references as ref
from mr2 import MR2Loss
from mr2 import representation as R


def labelled(b, k, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, generator=g, dtype=torch.float64)
    return f, torch.randint(0, k, (b,), generator=g)


def pairs_taken(y) -> bool:
    same = int((y.unsqueeze(1) == y.unsqueeze(0)).triu(1).sum())
    return R.PAIRS_PER_GRAM_ENTRY * same <= len(y) ** 2


def both(f, y, s_bar=0.4, t=2.0):
    """(pair list or Gram as chosen, Gram) per-sample values and gradients of a weighted sum."""
    out = []
    for pair_list in (True, False):
        x = f.clone().requires_grad_(True)
        s = torch.tensor(s_bar, dtype=f.dtype)
        values = R.representation_margin(x, y, s, t, None, pair_list)
        (grad,) = torch.autograd.grad((values * torch.linspace(0.5, 2, len(y))).sum(), x)
        out.append((values, grad))
    return out


@pytest.mark.parametrize(("b", "k"), [(60, 200), (200, 1000), (33, 500)])
def test_pairs_equal_gram_and_loop(b, k):
    f, y = labelled(b, k)
    assert pairs_taken(y) and len(torch.unique(y)) < b  # some classes do have partners
    (pv, pg), (gv, gg) = both(f, y)
    torch.testing.assert_close(pv, gv)
    torch.testing.assert_close(pg, gg)
    expect = torch.tensor(ref.representation_margin(f, y, 0.4, 2.0), dtype=torch.float64)
    torch.testing.assert_close(pv, expect)
    assert (pv[[i for i, c in enumerate(y.tolist()) if y.tolist().count(c) == 1]] == 0).all()


def test_every_sample_its_own_class_is_zero_with_zero_gradient():
    f, _ = labelled(12, 12)
    (pv, pg), _ = both(f, torch.arange(12))
    assert torch.equal(pv, torch.zeros(12, dtype=f.dtype))
    assert torch.equal(pg, torch.zeros_like(f))


def test_hand_computed_pair():
    """Samples 0 and 2 share a class at squared distance 4: l = log(1 + exp((4 - 2 s) / T))
    each, and d l_0 / d f_0 = 2 sigmoid((4 - 2 s) / T) / T * (f_0 - f_2)."""
    f = torch.tensor([[0.0, 0.0], [9.0, 9.0], [2.0, 0.0]], dtype=torch.float64)
    f.requires_grad_(True)
    y = torch.tensor([3, 1, 3])
    values = R.representation_margin(f, y, torch.tensor(0.5, dtype=f.dtype), 2.0)
    z = torch.tensor((4.0 - 1.0) / 2.0, dtype=torch.float64)
    torch.testing.assert_close(
        values, torch.stack([torch.log1p(z.exp()), 0 * z, torch.log1p(z.exp())])
    )
    values[0].backward()
    step = 2.0 * torch.sigmoid(z) / 2.0
    expect = torch.tensor([[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]], dtype=torch.float64) * step
    torch.testing.assert_close(f.grad, expect)


def test_few_classes_use_the_gram():
    """Two classes: the pair list would hold half the Gram, so the Gram runs (same values)."""
    f, y = labelled(40, 2)
    assert not pairs_taken(y)
    (pv, pg), (gv, gg) = both(f, y)
    torch.testing.assert_close(pv, gv)
    torch.testing.assert_close(pg, gg)


def test_pairs_float32_matches_float64():
    f, y = labelled(256, 1000, d=64)
    assert pairs_taken(y)
    (v64, g64), _ = both(f, y)
    (v32, g32), _ = both(f.float(), y)
    torch.testing.assert_close(v32.double(), v64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-5)


def test_pairs_gradcheck_and_gradgradcheck():
    f, y = labelled(30, 300, d=3)
    assert pairs_taken(y)
    s = torch.tensor(0.3, dtype=torch.float64)
    x = f.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: R.representation_margin(a, y, s, 2.0), (x,))
    assert torch.autograd.gradgradcheck(lambda a: R.representation_margin(a, y, s, 2.0), (x,))


def test_pairs_far_apart_are_finite():
    f = torch.randn(64, 16) * 300
    y = torch.arange(64) % 60  # four pairs
    f.requires_grad_(True)
    values = R.representation_margin(f, y, torch.tensor(0.0), 1.0)
    values.sum().backward()
    assert torch.isfinite(values).all() and values[:4].min() > 1e4
    assert torch.isfinite(f.grad).all()


def test_loss_with_many_classes_same_either_way():
    """MR2Loss at K = 1000: validate=True (pair list) and False (Gram) give the same loss,
    gradients and statistics."""
    g = torch.Generator().manual_seed(3)
    f = torch.randn(128, 16, generator=g)
    y = torch.randint(0, 1000, (128,), generator=g)
    assert pairs_taken(y)
    w = torch.randn(16, 1000, generator=g)
    out = []
    for validate in (True, False):
        loss_fn = MR2Loss(1000, lambda_rep=0.5, validate=validate)
        x = f.clone().requires_grad_(True)
        loss_fn(x @ w, x, y).backward()
        x.grad = None
        loss = loss_fn(x @ w, x, y)  # second step: s_bar > 0, so the term is not trivial
        loss.backward()
        out.append((loss, x.grad, loss_fn.state_dict()))
    torch.testing.assert_close(out[0][0], out[1][0])
    torch.testing.assert_close(out[0][1], out[1][1])
    for key, value in out[0][2].items():
        torch.testing.assert_close(value, out[1][2][key])


def test_the_pair_list_is_the_cpus_form_but_never_traced(monkeypatch):
    """At K = 1000 and B = 256 on the CPU both validate settings take the pair list (it
    reads its number of pairs: free on the CPU); a smaller batch and, while
    ``torch.compile`` traces, any batch take the Gram, with no host read (a graph break
    otherwise), and the same loss."""
    f = torch.randn(R.LIST_FROM_BATCH, 8, requires_grad=True)
    y = torch.randint(0, 1000, (R.LIST_FROM_BATCH,))
    z = f @ torch.randn(8, 1000)
    checked, loss_fn = MR2Loss(1000, lambda_rep=0.5), MR2Loss(1000, lambda_rep=0.5, validate=False)
    for each in (checked, loss_fn):
        each(z, f, y)  # statistics sized, s_bar > 0 afterwards
    calls = []
    real = R._pairs
    monkeypatch.setattr(R, "_pairs", lambda *a: calls.append(1) or real(*a))
    with loss_fn.statistics_frozen(), checked.statistics_frozen():
        listed = loss_fn(z, f, y)
        assert calls == [1], "the CPU's pair list was not taken without validation"
        torch.testing.assert_close(listed, checked(z, f, y))
        calls.clear()
        loss_fn(z[:-1], f[:-1], y[:-1])
        assert not calls, "a batch below LIST_FROM_BATCH took the pair list"

    def refuse(*_a, **_k):
        raise AssertionError("host read inside forward")

    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    with loss_fn.statistics_frozen():
        traced = loss_fn(z, f, y)
    traced.backward()
    monkeypatch.undo()
    assert not calls, "the pair list was taken while tracing"
    torch.testing.assert_close(traced, listed)
