"""MR²'s running class statistics as count-weighted sums, in one (K, 2 + D) tensor.

Row k holds ``[W_k, W_k A_k, W_k mu_k]``: the effective sample count, the weighted sum of
squared 2-norms ``A_k = E ||f||^2`` and the weighted feature sum. A sample contributes the
row ``[1, ||f_i||^2, f_i]`` (``sample_rows``), and the EMA keeps ``decay`` of a class's sums
when the batch holds the class, then adds the batch's rows: count-weighted pooling
(``functional.ema_merge``) written in sums, exact for the 2-norm. With class indices in one
process this happens in place: one multiply of the sums, one scatter-add of the rows
(``fold_rows_``); soft targets and several processes first form the batch's dense sums
(``fold_sums_``). The squared deviation is ``s_k^2 = A_k - ||mu_k||^2``, and the paper's
statistic for the 2-norm is ``||mu_k||^2 + s_k^2 = A_k`` itself. That difference cancels
when ||mu_k||^2 >> s_k^2 (ReLU features far from the origin), so the sums are kept in
float64 (``DTYPE``): s_k^2 then keeps float32 precision up to ||mu_k||^2 / s_k^2 ~ 1e8,
where float32 sums lose a digit per factor of 10. A p-norm other than 2 keeps its own mean
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


def sample_rows(features: Tensor, dtype: torch.dtype) -> Tensor:
    """``[1, ||f_i||^2, f_i]`` per sample (B, 2 + D) in ``dtype``, the norms taken in it."""
    sq = torch.linalg.vector_norm(features, dim=1, keepdim=True, dtype=dtype).square_()
    return torch.cat([sq.new_ones(len(sq), 1), sq, features], 1)  # cat promotes f to dtype


def batch_sums(rows: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """The batch's sums per class (K, 2 + D): one scatter-add of the rows by label (B,), or
    one product with class weights (B, K) (sums weighted by w_ik)."""
    if targets.dim() == 2:
        return targets.to(rows.dtype).t() @ rows
    return rows.new_zeros(num_classes, rows.shape[1]).index_add_(0, targets, rows)


def representable(sums: Tensor, decay: float) -> Tensor:
    """0-dim bool: a batch's rows or sums may enter the running sums: their total is finite
    and at most (1 - decay) times float32's maximum, so every running entry, a decayed sum
    of batch entries, stays within float32's range, and so does every mean, s_bar and
    margin the float32 loss reads from them. The total is dominated by the non-negative
    ||f||^2 column (NaN fails the comparison)."""
    return sums.sum() <= torch.finfo(torch.float32).max * (1.0 - decay)


def fold_rows_(sums: Tensor, rows: Tensor, labels: Tensor, decay: float, ok: Tensor) -> None:
    """The EMA step in place from sample rows and labels (B,), a no-op unless ``ok``: the
    classes in the batch keep ``decay`` of their sums, then the rows are added to them.
    ``rows`` are zeroed where refused."""
    factor = sums.new_ones(len(sums), 1).index_fill_(0, labels, decay).pow_(ok)  # 1: refused
    sums.mul_(factor).index_add_(0, labels, rows.masked_fill_(~ok, 0.0))


def fold_sums_(sums: Tensor, batch: Tensor, decay: float, ok: Tensor) -> None:
    """The EMA step in place from a batch's sums per class (K, 2 + D), a no-op unless
    ``ok``. ``batch`` is zeroed where refused."""
    present = ((batch[:, :1] > 0) & ok).to(sums.dtype)
    sums.addcmul_(sums, present, value=decay - 1.0).add_(batch.masked_fill_(~ok, 0.0))


def mean_sq_norm(sums: Tensor) -> Tensor:
    """A_k = E ||f||^2 per class (K,); NaN if unseen."""
    return sums[:, SQ_NORM] / sums[:, COUNT]


def means(sums: Tensor) -> Tensor:
    """mu_k (K, D); NaN rows if unseen."""
    return sums[:, MEAN:] / sums[:, :1]


def spread(sums: Tensor, a: Tensor) -> Tensor:
    """s_k^2 = A_k - ||mu_k||^2 in the 2-norm (K,), >= 0, from ``a = mean_sq_norm(sums)``;
    NaN for unseen classes."""
    mean_sq = (torch.linalg.vector_norm(sums[:, MEAN:], dim=1) / sums[:, COUNT]).square_()
    return (a - mean_sq).clamp_(min=0.0)


def merge_pnorm_spread(
    sums: Tensor, sq_dev: Tensor, batch: Tensor, dev_sums: Tensor, decay: float, p: float
) -> Tensor:
    """The p-norm mean squared deviation column (p != 2) pooled like ``ema_merge``: ``sums``
    the statistics before the batch, ``batch`` its sums, ``dev_sums`` (K,) the batch's sums
    of ||f_i - m_k||_p^2 around its own class means m."""
    weight, count = sums[:, COUNT], batch[:, COUNT]
    safe = count.clamp(min=1.0).unsqueeze(1)
    _, _, new = ema_merge(
        weight, torch.nan_to_num(means(sums)), sq_dev.unsqueeze(1), count,
        batch[:, MEAN:] / safe, dev_sums.unsqueeze(1) / safe, decay, (p,),
    )  # fmt: skip
    return new[:, 0]


def statistic(sums: Tensor, a: Tensor, sq_dev_p: Tensor | None, p: float, kind: str) -> Tensor:
    """a_k of gamma_k ∝ a_k^(1/3) (K,), NaN for unseen classes: "paper" ||mu_k||_p^2 +
    s_k^2, "centered" the same with mu_k centred by the count-weighted mean of all classes,
    "spread" s_k^2 alone. ``a = mean_sq_norm(sums)``; ``sq_dev_p`` the p-norm column (None
    for p = 2)."""
    if kind == "paper" and p == 2.0:
        return a  # ||mu||^2 + s^2 = A: no cancellation
    dev = spread(sums, a) if sq_dev_p is None else sq_dev_p / (sums[:, COUNT] > 0)
    if kind == "spread":
        return dev
    mean = means(sums)
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


def s_bar(sums: Tensor, a: Tensor, seen: Tensor) -> Tensor:
    """Mean over seen classes of s_k^2 in the 2-norm (0-dim); 0 before any class is seen."""
    return spread(sums, a).nansum() / seen


def from_legacy(weight: Tensor, mean: Tensor, sq_dev: Tensor) -> tuple[Tensor, Tensor]:
    """Statistics saved by mr2 <= 0.9 (``weight``, ``class_mean``, ``sq_dev``) as (sums,
    p-norm column)."""
    a = sq_dev[:, 1] + mean.square().sum(1) if mean.shape[1] else sq_dev[:, 1]
    sums = torch.cat([weight.unsqueeze(1), (weight * a).unsqueeze(1), weight[:, None] * mean], 1)
    return sums.to(DTYPE), sq_dev[:, 0].to(DTYPE)
