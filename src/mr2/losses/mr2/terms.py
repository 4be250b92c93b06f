"""MR²'s two loss terms in one autograd Function with an analytic backward.

Per sample i, with margins g_i = gamma_{y_i} (constants), pair distances d_ij = ||f_i -
f_j||^2 from the Gram matrix G = f f^T and the same-class mask M (self-pairs excluded)::

    ce_i  = -log softmax(z_i / g_i)_{y_i}
    rep_i = log(1 + sum_j M_ij exp((d_ij - shift) / scale))
    l_i   = ce_i + lambda * w_i * rep_i          (w_i = 1, or B / n_{y_i} for "class")

``rep_i`` is one ``logsumexp`` over the row with its diagonal set to 0 (exp(0) is the "1 +")
and the other classes at -inf. Backward: dl/dz_i = (softmax_i - onehot_i) / g_i and, with
P_ij = exp(x_ij - rep_i) the weights of the partners and S = W + W^T for W_ij = c_i P_ij,
dL/df = 2 (diag(S 1) f - S f) / scale: one matrix product. ``create_graph=True`` (second
derivatives) differentiates the same formula written in plain operations instead.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _rep_exponents(gram: Tensor, other: Tensor, s_bar: Tensor, scale: Tensor) -> Tensor:
    """(B, B): (d_ij - 2 s_bar) / scale for same-class pairs, -inf for the other pairs
    (``other``: y_i != y_j), 0 on the diagonal (the "1 +")."""
    half = gram.diagonal() - s_bar  # ||f_i||^2 - s_bar
    x = torch.add(half.unsqueeze(1) + half, gram, alpha=-2.0).div_(scale)
    x.masked_fill_(other, float("-inf")).diagonal().fill_(0.0)
    return x


class MarginTerms(torch.autograd.Function):
    """``apply(logits, features, column, inv_col, gram, other, s_bar, scale, lam,
    rep_weight, reduction)`` -> per-sample losses (B,) or their mean / sum.

    ``column`` (B, 1) each sample's class; ``inv_col`` (B, 1) 1 / gamma_{y_i}
    (None: no margins); ``gram`` f f^T (B, B) computed without gradient (None when
    ``lam == 0``); ``other`` (B, B) bool, y_i != y_j; ``s_bar`` and ``scale`` 0-dim
    tensors; ``rep_weight`` (B,) or None."""

    @staticmethod
    def forward(ctx, z, f, column, inv_col, gram, other, s_bar, scale, lam, rep_w, reduction):
        log_p = (z if inv_col is None else z * inv_col).log_softmax(1)
        per = log_p.gather(1, column).squeeze(1).neg_()
        x = rep = None
        if lam > 0:
            x = _rep_exponents(gram, other, s_bar, scale)
            rep = x.logsumexp(1)
            per = torch.add(per, rep if rep_w is None else rep * rep_w, alpha=lam)
        ctx.save_for_backward(z, f, column, inv_col, other, s_bar, scale, rep_w, log_p, x, rep)
        ctx.lam, ctx.reduction = lam, reduction
        return _reduce(per, reduction)

    @staticmethod
    def backward(ctx, grad):
        z, f, column, inv_col, other, s_bar, scale, rep_w, log_p, x, rep = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient
            inputs = (column, inv_col, other, s_bar, scale, ctx.lam, rep_w, ctx.reduction)
            d_z, d_f = torch.autograd.grad(
                reference(z, f, *inputs), (z, f), grad, create_graph=True, allow_unused=True
            )
            return d_z, d_f, *_NONE
        if ctx.reduction == "mean":
            grad = grad / len(f)
        row = grad.unsqueeze(1) if grad.dim() else grad
        row = row if inv_col is None else inv_col * row
        d_z = log_p.exp()  # (softmax - onehot) * grad / margin
        d_z.scatter_add_(1, column, d_z.new_full(column.shape, -1.0)).mul_(row)
        if ctx.lam == 0:
            return d_z, None, *_NONE
        c = grad * (2.0 * ctx.lam) / scale  # 0-dim, or (B,) for reduction "none"
        if rep_w is not None:
            c = c * rep_w
        w = (x - rep.unsqueeze(1)).exp_()  # P_ij: the weight of partner j in rep_i
        w.diagonal().zero_()  # the "1 +" term is no partner
        per_row = ctx.reduction == "none" or rep_w is not None  # c: (B,), or one number
        w.mul_(c.unsqueeze(1) if per_row else c)
        s = w + w.t()
        d_f = torch.addmm(s.sum(1, keepdim=True) * f, s, f, alpha=-1.0)
        return d_z, d_f, *_NONE


_NONE = (None,) * 9


def _reduce(per: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per.mean()
    return per.sum() if reduction == "sum" else per


def reference(z, f, column, inv_col, other, s_bar, scale, lam, rep_w, reduction) -> Tensor:
    """The same losses in plain, twice-differentiable operations."""
    scaled = z if inv_col is None else z * inv_col
    per = -torch.log_softmax(scaled, 1).gather(1, column).squeeze(1)
    if lam > 0:
        rep = _rep_exponents(f @ f.t(), other, s_bar, scale).logsumexp(1)
        per = per + lam * (rep if rep_w is None else rep * rep_w)
    return _reduce(per, reduction)
