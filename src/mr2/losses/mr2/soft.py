"""MR² on soft (B, K) targets: mixup / cutmix as timm and torchvision produce them, with
label smoothing, per batch or per sample (timm's ``mode="elem"``).

A soft target's loss is the loss's expectation under the target distribution t, so a
one-hot row gives exactly the hard-label loss, and a mixed row ``lam e_a + (1 - lam) e_b``
gives ``lam l(y_a) + (1 - lam) l(y_b)`` sample by sample:

    l_gamma(z, t) = sum_k t_k CE(z / gamma_k, k)

Each class keeps its own margin, so label smoothing (mass on every class) costs K
log-sum-exps per sample: ``ExpectedMarginCE`` computes them in chunks of classes and again
in the backward pass, in O(B K chunk) memory instead of O(B K^2).

Class membership for the statistics and the representation term is the mass above the
row's floor, ``w = (t - min_k t) / sum(t - min_k t)``: the floor is what label smoothing
spreads over all classes, which is no evidence of membership (a uniform row has none).
The statistics are updated with these weights (a mixed sample counts ``lam`` towards its
first class), and the representation term is its expectation over the classes,

    l_s(i) = sum_k w_ik log(1 + sum_{j != i} w_jk exp((d_ij - 2 s_bar) / scale)).

With two-way mixing and K >= 3 the floor is exactly label smoothing's (the classes outside
the mix hold only it). With K = 2 a mixed row has no empty class, so only its dominant class
counts for the statistics and the representation term (the logit term stays exact).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

CHUNK_ELEMENTS = 2**24  # (B, chunk, K) entries per chunk of the expected margin CE


def smoothed(targets: Tensor, num_classes: int, eps: float) -> Tensor:
    """Targets (hard (B,) or soft (B, K)) as (B, K) probabilities mixed with the uniform
    distribution: ``(1 - eps) t + eps / K``, as ``F.cross_entropy``'s ``label_smoothing``."""
    t = targets if targets.dim() == 2 else F.one_hot(targets, num_classes).float()
    return t * (1.0 - eps) + eps / num_classes if eps else t


def class_evidence(t: Tensor) -> Tensor:
    """(B, K) membership weights: the mass above each row's minimum, normalised to sum 1
    (a row with equal entries gets zeros)."""
    above = t - t.amin(1, keepdim=True)
    total = above.sum(1, keepdim=True)
    return above / torch.where(total > 0, total, 1.0)


def per_class_weights(w: Tensor) -> Tensor:
    """``rep_reduction="class"`` for soft rows: w_ik B / n_k, n_k = sum_i w_ik (0 if 0)."""
    n = w.sum(0)
    return w * torch.where(n > 0, len(w) / torch.where(n > 0, n, 1.0), 0.0)


def representation(
    f: Tensor, w: Tensor, s_bar: Tensor, scale: Tensor, outer: Tensor | None = None
) -> Tensor:
    """``sum_k v_ik log(1 + sum_{j != i} w_jk exp((d_ij - 2 s_bar) / scale))`` (B,) with
    ``v = outer`` (default ``w``), as softplus of a log-sum-exp, so it never overflows."""
    gram = f @ f.t()
    half = gram.diagonal() - s_bar
    x = (half.unsqueeze(1) + half - 2.0 * gram) / scale
    x = x.masked_fill(torch.eye(len(f), dtype=torch.bool, device=f.device), float("-inf"))
    top = x.amax(1, keepdim=True).detach()
    top = torch.where(torch.isfinite(top), top, 0.0)  # B = 1: no partner at all
    mass = (x - top).exp() @ w  # (B, K): sum_j w_jk exp(x_ij - top_i)
    some = mass > 0
    inner = torch.where(some, top + torch.where(some, mass, 1.0).log(), float("-inf"))
    return ((w if outer is None else outer) * F.softplus(inner)).sum(1)


def deviation_sums(f: Tensor, w: Tensor, means: Tensor, p: float) -> Tensor:
    """(K,) weighted sums ``sum_i w_ik ||f_i - m_k||_p^2`` around the class means ``m``."""
    return (w * torch.cdist(f, means, p=p).square()).sum(0)


class ExpectedMarginCE(torch.autograd.Function):
    """``apply(z, t, inv)`` -> (B,) ``sum_k t_ik (logsumexp(z_i inv_k) - z_ik inv_k)``: the
    margin cross-entropy expected under ``t`` (B, K), ``inv`` (K,) = 1 / gamma. Gradient
    for ``z`` only (margins and targets are constants); no second derivative."""

    @staticmethod
    def forward(ctx, z: Tensor, t: Tensor, inv: Tensor) -> Tensor:
        ctx.save_for_backward(z, t, inv)
        lse = torch.cat([_scaled(z, inv, c).logsumexp(2) for c in _chunks(z)], 1)
        return (t * (lse - z * inv)).sum(1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        z, t, inv = ctx.saved_tensors
        c = t * inv * grad.unsqueeze(1)  # (B, K): weight of class k's softmax in row i
        d_z = -c
        for cols in _chunks(z):
            p = _scaled(z, inv, cols).softmax(2)  # (B, chunk, K)
            d_z = d_z + torch.bmm(c[:, cols].unsqueeze(1), p).squeeze(1)
        return d_z, None, None


def _chunks(z: Tensor) -> list[slice]:
    batch, k = z.shape
    size = max(1, CHUNK_ELEMENTS // max(1, batch * k))
    return [slice(a, min(a + size, k)) for a in range(0, k, size)]


def _scaled(z: Tensor, inv: Tensor, cols: slice) -> Tensor:
    """(B, chunk, K): row i's logits over each margin of the classes ``cols``."""
    return z.unsqueeze(1) * inv[cols].unsqueeze(1)
