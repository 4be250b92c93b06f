"""Fused forward/backward of MR²'s representation margin term (no B x B x D tensor).

For rows f_i (A, D) against partners g_j (C, D) with ``z_ij = (||f_i - g_j||^2 - 2 s_bar) / T``
and M the same-class mask (self-pairs removed)::

    l_i = log(1 + sum_j M_ij exp(z_ij)),     dl_i / dz_ij = M_ij exp(z_ij - l_i) =: P_ij

Forward costs one A x C x D product (the Gram, folded into ``addmm`` with the norms and
the ``-2 s_bar`` shift); backward reuses P saved from the forward (no second exp) and one
product per operand. When rows and partners are the same batch the gradient only needs
``S = G + G^T``: ``dL/df = 2 (diag(S 1) f - S f)``, a single product.

Exponents are clamped below at about log(smallest normal float) before ``exp``: entries that
small (including the masked ones) contribute less than one ulp of the sum, whose largest
term is exp(0) after the shift, and ``exp`` of huge negative numbers runs on a slow path on
CPUs. The gradient they leak is of the same negligible size.

Only same-class pairs enter the sum: about B^2 / (2K) of them. When they are few (K large,
e.g. 1000 ImageNet classes) the term is computed from the list of pairs instead of the
B x B Gram (``_PairMargin``: O(P * D) instead of O(B^2 * D), the same values). Listing the
pairs reads their number back to the host, so this runs on the CPU only; ``MR2Loss`` tries it
from K = 50 classes (fewer give balanced batches too many pairs) and batches of
``LIST_FROM_BATCH`` samples (below, the two forms cost the same on the CPU and the Gram keeps
its step the one an accelerator runs), never while ``torch.compile`` traces.
"""

from __future__ import annotations

import torch
from torch import Tensor

PAIRS_PER_GRAM_ENTRY = 100  # the pair list runs when it has at most B^2 / 100 pairs
LIST_FROM_BATCH = 256  # MR2Loss's least batch for it (benchmarks/representation_speed.py)


def _exp_floor(dtype: torch.dtype) -> float:
    return -80.0 if dtype in (torch.float32, torch.float16, torch.bfloat16) else -700.0


class _RepresentationMargin(torch.autograd.Function):
    """Rows against partners ``cols``; ``cols = col_y = None``: the batch against itself
    (None rather than the same tensor twice, which ``torch.compile`` cannot trace)."""

    @staticmethod
    def forward(ctx, rows, cols, row_y, col_y, offset, s_bar, temperature):
        symmetric = cols is None
        g = rows if symmetric else cols
        col_y = row_y if symmetric else col_y
        sq_r = (rows.square().sum(1) - s_bar) / temperature  # (A,)
        sq_c = sq_r if symmetric else (g.square().sum(1) - s_bar) / temperature  # (C,)
        other = row_y.unsqueeze(1) != col_y.unsqueeze(0)  # (A, C): not a partner
        other.diagonal(offset).fill_(True)
        # -inf in the bias marks non-partners; addmm keeps it (-inf + finite = -inf).
        bias = (sq_r.unsqueeze(1) + sq_c.unsqueeze(0)).masked_fill_(other, float("-inf"))
        z = torch.addmm(bias, rows, g.t(), alpha=-2.0 / temperature)  # (A, C)
        top = z.amax(dim=1).clamp(min=0)  # (A,) the shift also covers the "1 +" term
        # Non-partners come out as exp(floor) ~ 1e-35 instead of 0: below one ulp of the
        # total, which is >= 1 (its largest term is exp(0)).
        e = z.sub_(top.unsqueeze(1)).clamp_(_exp_floor(z.dtype), 0.0).exp_()
        total = torch.exp(-top) + e.sum(dim=1)
        loss = top + total.log()  # (A,)
        ctx.save_for_backward(rows, g, e.div_((total * temperature).unsqueeze(1)), row_y, col_y)
        ctx.symmetric, ctx.offset, ctx.s_bar, ctx.temperature = (
            symmetric,
            offset,
            s_bar,
            temperature,
        )
        return loss

    @staticmethod
    def backward(ctx, grad):
        rows, g, p, row_y, col_y = ctx.saved_tensors  # p = P / T = dl_i / d dist_ij
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient
            return _differentiable_backward(ctx, rows, g, row_y, col_y, grad)
        if ctx.symmetric:  # S = W + W^T with W = grad_i * p_ij, in one allocation
            s = (p.t() * grad.unsqueeze(0)).addcmul_(p, grad.unsqueeze(1))
            d_rows = 2.0 * (s.sum(1, keepdim=True) * rows - s @ rows)
            return d_rows, None, None, None, None, None, None
        w = p * grad.unsqueeze(1)  # dL / d dist_ij, (A, C)
        d_rows = 2.0 * (w.sum(1, keepdim=True) * rows - w @ g)
        d_cols = 2.0 * (w.sum(0).unsqueeze(1) * g - w.t() @ rows)
        return d_rows, d_cols, None, None, None, None, None


class _PairMargin(torch.autograd.Function):
    """The symmetric term from the same-class pairs (a_p < b_p) of a batch f (B, D)."""

    @staticmethod
    def forward(ctx, f, targets, a, b, s_bar, temperature):
        diff = f.index_select(0, a) - f.index_select(0, b)  # (P, D)
        z = (diff.square().sum(1) - 2.0 * s_bar) / temperature  # (P,)
        ends = torch.cat([a, b])  # each pair counts for both of its samples
        z2 = torch.cat([z, z])
        top = f.new_zeros(len(f)).scatter_reduce_(0, ends, z2, "amax")  # >= 0: the "1 +"
        e = (z2 - top.index_select(0, ends)).clamp_(_exp_floor(z.dtype), 0.0).exp_()
        total = torch.exp(-top).index_add_(0, ends, e)
        ctx.save_for_backward(
            f, targets, diff, ends, e.div_(total.index_select(0, ends) * temperature)
        )
        ctx.s_bar, ctx.temperature = s_bar, temperature
        return top + total.log()

    @staticmethod
    def backward(ctx, grad):
        f, targets, diff, ends, q = ctx.saved_tensors  # q = dl_end / d dist of each pair
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient
            values = _reference(f, f, targets, targets, 0, ctx.s_bar, ctx.temperature)
            (d,) = torch.autograd.grad(values, [f], grad, create_graph=True)
            return d, None, None, None, None, None
        w = q * grad.index_select(0, ends)
        w = 2.0 * (w[: len(diff)] + w[len(diff) :]).unsqueeze(1) * diff  # d/d f_a; -it for f_b
        a, b = ends[: len(diff)], ends[len(diff) :]
        d_f = f.new_zeros(f.shape).index_add_(0, a, w).index_add_(0, b, w, alpha=-1.0)
        return d_f, None, None, None, None, None


def _pairs(features: Tensor, targets: Tensor, s_bar: Tensor, temperature: float) -> Tensor | None:
    """The symmetric term from the list of same-class pairs, or None when they are many.

    On a 2-core CPU one pair (gathers, scatter-adds) costs about as much as 100 entries of
    the Gram (one matrix product): the list wins from about K = 50 classes
    (``benchmarks/representation_speed.py``)."""
    counts = torch.bincount(targets)
    if PAIRS_PER_GRAM_ENTRY * int((counts * (counts - 1)).sum()) // 2 > len(targets) ** 2:
        return None
    a, b = (targets.unsqueeze(1) == targets.unsqueeze(0)).triu_(1).nonzero(as_tuple=True)
    return _PairMargin.apply(features, targets, a, b, s_bar, temperature)


def _reference(rows, cols, row_y, col_y, offset, s_bar, temperature) -> Tensor:
    """The same per-sample values with plain autograd operations (an A x C x D-free but
    twice-differentiable form): what ``create_graph=True`` differentiates."""
    dist = rows.square().sum(1, keepdim=True) + cols.square().sum(1) - 2.0 * rows @ cols.t()
    z = (dist - 2.0 * s_bar) / temperature
    other = row_y.unsqueeze(1) != col_y.unsqueeze(0)
    other.diagonal(offset).fill_(True)
    z = z.masked_fill(other, float("-inf"))
    return torch.logsumexp(torch.cat([z.new_zeros(len(z), 1), z], dim=1), dim=1)


def _differentiable_backward(ctx, rows, g, row_y, col_y, grad):
    cols = rows if ctx.symmetric else g
    values = _reference(rows, cols, row_y, col_y, ctx.offset, ctx.s_bar, ctx.temperature)
    wrt = [rows] if ctx.symmetric else [rows, cols]
    needs = [t for t in wrt if t.requires_grad]
    grads = iter(torch.autograd.grad(values, needs, grad, create_graph=True, allow_unused=True))
    d_rows = next(grads) if rows.requires_grad else None
    d_cols = None if ctx.symmetric or not cols.requires_grad else next(grads)
    return d_rows, d_cols, None, None, None, None, None


def representation_margin(
    features: Tensor,
    targets: Tensor,
    s_bar: Tensor,
    temperature: float,
    partners: tuple[Tensor, Tensor, int] | None = None,
    pair_list: bool = True,
) -> Tensor:
    """Per-sample ``log(1 + sum_{j != i, y_j = y_i} exp((||f_i - f_j||^2 - 2 s_bar) / T))``.

    Args:
        features: (A, D) rows; targets (A,).
        s_bar: 0-dim tensor (a constant: no gradient flows to it).
        temperature: T > 0.
        partners: optional (features (C, D), targets (C,), offset) to compare the rows with a
            larger batch that holds them at rows ``offset .. offset + A`` (e.g. gathered
            across processes); by default the batch is compared with itself.
        pair_list: allow the pair-list form (CPU only; it reads the number of pairs back
            to the host, see the module docstring). False: always the Gram, sync-free.

    Returns:
        (A,) per-sample values, 0 for a sample without a same-class partner.

    Example:
        >>> f = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
        >>> representation_margin(f, torch.tensor([0, 0, 1]), torch.tensor(0.5), 1.0)
        tensor([0.6931, 0.6931, 0.0000])
    """
    s = s_bar.detach().to(features.dtype)
    if partners is None:
        if pair_list and features.device.type == "cpu":
            few = _pairs(features, targets, s, temperature)
            if few is not None:
                return few
        return _RepresentationMargin.apply(features, None, targets, None, 0, s, temperature)
    cols, col_y, offset = partners
    return _RepresentationMargin.apply(features, cols, targets, col_y, offset, s, temperature)
