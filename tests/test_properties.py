"""Hypothesis property tests: any finite batch gives a finite, non-negative loss."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mr2 import MR2Loss


@st.composite
def batches(draw):
    b, k, d = draw(st.integers(1, 24)), draw(st.integers(1, 8)), draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e3]))
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, generator=g) * scale
    w = torch.randn(d, k, generator=g)
    return w, f, torch.randint(0, k, (b,), generator=g), k


@settings(max_examples=60, deadline=None)
@given(batches(), st.floats(0.0, 2.0), st.floats(0.1, 5.0), st.sampled_from([2.0, 5.0]))
def test_loss_is_finite_non_negative_with_right_shapes(batch, lam, c_bar, p):
    w, f, y, k = batch
    f.requires_grad_(True)
    logits = f @ w
    loss_fn = MR2Loss(k, lambda_rep=lam, c_bar=c_bar, norm_p=p, reduction="none")
    per_sample = loss_fn(logits, f, y)
    assert per_sample.shape == (len(y),)
    assert torch.isfinite(per_sample).all() and (per_sample >= 0).all()
    per_sample.sum().backward()
    assert torch.isfinite(f.grad).all()
    gamma = loss_fn.margins()
    assert gamma.shape == (k,) and (gamma > 0).all()
    seen = loss_fn.seen()
    mean = torch.tensor(c_bar, dtype=torch.float64)
    torch.testing.assert_close(gamma[seen].mean(), mean, rtol=1e-4, atol=1e-5)
