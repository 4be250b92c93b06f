"""MR²'s running class statistics as count-weighted sums, in one (K, 2 + D) tensor.

Row k holds ``[W_k, W_k A_k, W_k mu_k]``: the effective sample count, the weighted sum of
squared 2-norms ``A_k = E ||f||^2`` and the weighted feature sum. A batch contributes its
plain sums ``[n_k, sum ||f_i||^2, sum f_i]`` (one scatter-add of the rows ``[1, ||f_i||^2,
f_i]``), and the EMA is one fused multiply-add, ``S' = S * (decay if n_k > 0 else 1) +
batch``: count-weighted pooling (``functional.ema_merge``) written in sums, exact for the
2-norm. The means follow by one division, ``mu_k = (W mu)_k / W_k``, and the squared
deviation is ``s_k^2 = A_k - ||mu_k||^2``; the paper's statistic for the 2-norm is
``||mu_k||^2 + s_k^2 = A_k`` itself. That difference cancels when ||mu_k||^2 >> s_k^2
(ReLU features far from the origin), so the sums, and the batch's, are kept in float64
(``DTYPE``): s_k^2 then keeps float32 precision up to ||mu_k||^2 / s_k^2 ~ 1e8, where
float32 sums lose a digit per factor of 10. A p-norm other than 2 keeps its own mean
squared deviation column, pooled with ``functional.ema_merge``.

Unseen classes (W = 0) come out as NaN (0 / 0) from the divisions, so the reductions over
seen classes are ``nansum``s and nothing needs a boolean mask. No function here reads a
value back to the host.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mr2.functional import ema_merge, sq_pnorm

COUNT, SQ_NORM, MEAN = 0, 1, 2  # columns: W, W A, then W mu


DTYPE = torch.float64  # of the sums (float32 on devices without float64, e.g. MPS)


def dtype_for(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else DTYPE


def batch_sums(features: Tensor, targets: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """``[n_k, sum ||f_i||^2, sum f_i]`` per class (K, 2 + D) in ``dtype``: one scatter-add
    of labels (B,), or one product with class weights (B, K) (sums weighted by w_ik)."""
    f = features.to(dtype)
    rows = torch.cat([f.new_ones(len(f), 1), f.square().sum(1, keepdim=True), f], 1)
    if targets.dim() == 2:
        return targets.to(dtype).t() @ rows
    return rows.new_zeros(num_classes, rows.shape[1]).index_add_(0, targets, rows)


def merged(sums: Tensor, batch: Tensor, decay: float) -> Tensor:
    """The EMA: classes present in the batch keep ``decay`` of their sums, then add it."""
    present = batch[:, :1].sign()  # 1 for present classes (weights > 0), 0 for absent
    return torch.addcmul(sums + batch, sums, present, value=decay - 1.0)


def representable(*tensors: Tensor) -> Tensor:
    """0-dim bool: the float64 total of all entries is finite and within float32's range.
    The sums' entries are dominated by the non-negative W A column, so this says that every
    statistic, and every s_bar or margin the float32 loss computes from them, is finite
    (NaN fails the comparison too)."""
    total = tensors[0].sum(dtype=torch.float64)
    for t in tensors[1:]:
        total = total + t.sum(dtype=torch.float64)
    return total.abs() <= torch.finfo(torch.float32).max


def means(sums: Tensor) -> Tensor:
    """``[A_k, mu_k]`` (K, 1 + D): per-class second moment and mean; NaN rows if unseen."""
    return sums[:, SQ_NORM:] / sums[:, :1]


def spread(moments: Tensor) -> Tensor:
    """s_k^2 = A_k - ||mu_k||^2 in the 2-norm (K,), >= 0, from ``means(sums)``; NaN for
    unseen classes."""
    mean_sq = torch.linalg.vector_norm(moments[:, 1:], dim=1).square_()
    return (moments[:, 0] - mean_sq).clamp_(min=0.0)


def merge_pnorm_spread(
    sums: Tensor, sq_dev: Tensor, batch: Tensor, dev_sums: Tensor, decay: float, p: float
) -> Tensor:
    """The p-norm mean squared deviation column (p != 2) pooled like ``ema_merge``: ``sums``
    the statistics before the batch, ``batch`` its sums, ``dev_sums`` (K,) the batch's sums
    of ||f_i - m_k||_p^2 around its own class means m."""
    weight, count = sums[:, COUNT], batch[:, COUNT]
    mean = torch.nan_to_num(sums[:, MEAN:] / sums[:, :1])
    safe = count.clamp(min=1.0).unsqueeze(1)
    _, _, new = ema_merge(
        weight, mean, sq_dev.unsqueeze(1), count, batch[:, MEAN:] / safe,
        dev_sums.unsqueeze(1) / safe, decay, (p,),
    )  # fmt: skip
    return new[:, 0]


def statistic(
    sums: Tensor, moments: Tensor, sq_dev_p: Tensor | None, p: float, kind: str
) -> Tensor:
    """a_k of gamma_k ∝ a_k^(1/3) (K,), NaN for unseen classes: "paper" ||mu_k||_p^2 +
    s_k^2, "centered" the same with mu_k centred by the count-weighted mean of all classes,
    "spread" s_k^2 alone. ``moments = means(sums)``; ``sq_dev_p`` the p-norm column (None
    for p = 2)."""
    if kind == "paper" and p == 2.0:
        return moments[:, 0]  # ||mu||^2 + s^2 = A: no cancellation
    dev = spread(moments) if sq_dev_p is None else sq_dev_p / (sums[:, COUNT] > 0)
    if kind == "spread":
        return dev
    mean = moments[:, 1:]
    if kind == "centered":
        mean = mean - sums[:, MEAN:].sum(0) / sums[:, COUNT].sum()
    return sq_pnorm(mean, p) + dev


def reciprocal(a: Tensor) -> Tensor:
    """1 / a_k (K,), the statistic of reversed margins (gamma_k ∝ a_k^(-1/3)): ``a`` clamped
    at the smallest normal number first (a class with a = 0 gets the largest margin, not
    inf); NaN (unseen) stays NaN."""
    return a.clamp(min=torch.finfo(a.dtype).tiny).reciprocal()


def seen_count(sums: Tensor) -> Tensor:
    """The number of classes seen so far, at least 1 (0-dim)."""
    return torch.count_nonzero(sums[:, COUNT]).clamp_(min=1)


def s_bar(moments: Tensor, seen: Tensor) -> Tensor:
    """Mean over seen classes of s_k^2 in the 2-norm (0-dim) from ``means(sums)``; 0 before
    any class is seen."""
    return spread(moments).nansum() / seen


def from_legacy(weight: Tensor, mean: Tensor, sq_dev: Tensor) -> tuple[Tensor, Tensor]:
    """Statistics saved by mr2 <= 0.9 (``weight``, ``class_mean``, ``sq_dev``) as (sums,
    p-norm column)."""
    a = sq_dev[:, 1] + mean.square().sum(1) if mean.shape[1] else sq_dev[:, 1]
    sums = torch.cat([weight.unsqueeze(1), (weight * a).unsqueeze(1), weight[:, None] * mean], 1)
    return sums.to(DTYPE), sq_dev[:, 0].to(DTYPE)
