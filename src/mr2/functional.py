"""Pure tensor maths of MR² (Zhu et al., ICLR 2026). No state, no communication.

Notation: B samples, K classes, D feature width. ``||.||_p`` is the p-norm over features.
For class k with batch samples f_i (y_i = k):

    mu_k   = mean_i f_i                          (class mean, D)
    s_k^2  = mean_i ||f_i - mu_k||_p^2           (mean squared deviation, population 1/N_k)
    a_k    = ||mu_k||_p^2 + s_k^2
    gamma_k = c_bar * a_k^(1/3) / mean_{seen j} a_j^(1/3)

    l_gamma(x, y) = CE(z / gamma_y, y)
    l_s(x, y)     = log(1 + sum_{x+ != x, y+ = y} exp((||f - f+||_2^2 - 2 s_bar) / T))

Everything is computed in float32 (or float64 if given), also under autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from mr2 import _checks
from mr2.representation import representation_margin

__all__ = [
    "class_deviation_sums",
    "class_feature_sums",
    "class_margins",
    "class_statistics",
    "class_sums_packed",
    "ema_merge",
    "logit_margin_cross_entropy",
    "representation_margin_loss",
]


@contextlib.contextmanager
def full_precision(x: Tensor) -> Iterator[None]:
    """Disable autocast for the device of ``x`` (the maths below must not run in fp16)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def as_fp32(x: Tensor) -> Tensor:
    """Half and bfloat16 go to float32; float32 and float64 are kept."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def sq_pnorm(x: Tensor, p: float) -> Tensor:
    """Squared p-norm over the last dimension: for p = 2 one fused reduction; otherwise
    ``sum |x|^p`` to the power 2 / p, half the time of ``vector_norm(x, p)`` on CPUs and
    the same values (both overflow once ``|x|^p`` passes the dtype's maximum)."""
    if p == 2.0:
        return torch.linalg.vector_norm(x, dim=-1).square()
    return x.abs().pow(p).sum(-1).pow(2.0 / p)


def sq_pnorms(x: Tensor, norms: tuple[float, ...]) -> Tensor:
    """Squared p-norms over the last dimension for each p: (..., len(norms)); repeats reused."""
    done = {p: sq_pnorm(x, p) for p in dict.fromkeys(norms)}
    return torch.stack([done[p] for p in norms], dim=-1)


# ----------------------------------------------------------------------------------------
# Sufficient statistics: sums that add up across batches and processes.


def class_sums_packed(features: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Per-class [count, feature sum] as one (K, 1 + D) tensor (one scatter-add, one
    collective when summed over processes). O(B*D) work plus zero-filling K x (1 + D)."""
    f = as_fp32(features.detach())
    rows = torch.cat([f.new_ones(f.shape[0], 1), f], dim=1)  # (B, 1 + D)
    return rows.new_zeros(num_classes, rows.shape[1]).index_add_(0, targets, rows)


def class_feature_sums(
    features: Tensor, targets: Tensor, num_classes: int
) -> tuple[Tensor, Tensor]:
    """Per-class sample count (K,) and feature sum (K, D)."""
    packed = class_sums_packed(features, targets, num_classes)
    return packed[:, 0], packed[:, 1:]


def class_deviation_sums(
    features: Tensor, targets: Tensor, means: Tensor, norms: tuple[float, ...]
) -> Tensor:
    """Per-class sums of ||f_i - mu_{y_i}||_p^2 for each p in ``norms``: (K, len(norms))."""
    f = as_fp32(features.detach())
    per_sample = sq_pnorms(f - means[targets], norms)  # (B, P)
    return f.new_zeros(means.shape[0], len(norms)).index_add_(0, targets, per_sample)


def class_statistics(
    features: Tensor, targets: Tensor, num_classes: int, norm_p: float = 2.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class statistics of one batch.

    Args:
        features: (B, D) float features.
        targets: (B,) integer labels in [0, num_classes).
        num_classes: K.
        norm_p: the p of the p-norm (2 in the paper's formula, 5 in the authors' code).

    Returns:
        count (K,), ||mu_k||_p^2 (K,), s_k^2 = mean_i ||f_i - mu_k||_p^2 (K,). Classes absent
        from the batch have count 0 and statistics 0.

    Example:
        >>> f = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
        >>> class_statistics(f, torch.tensor([0, 0, 1]), num_classes=3)
        (tensor([2., 1., 0.]), tensor([4., 4., 0.]), tensor([1., 0., 0.]))
    """
    _checks.check_matrix(features, "features")
    _checks.check_targets_shape(targets, features.shape[0])
    _checks.check_values(targets, num_classes, features=features)
    with full_precision(features):
        count, sums = class_feature_sums(features, targets, num_classes)
        means = sums / count.clamp(min=1).unsqueeze(1)
        dev = class_deviation_sums(features, targets, means, (norm_p,))[:, 0]
        return count, sq_pnorm(means, norm_p), dev / count.clamp(min=1)


def ema_merge(
    weight: Tensor,
    mean: Tensor,
    sq_dev: Tensor,
    batch_count: Tensor,
    batch_mean: Tensor,
    batch_sq_dev: Tensor,
    decay: float,
    norms: tuple[float, ...] = (2.0,),
) -> tuple[Tensor, Tensor, Tensor]:
    """Count-weighted exponential moving average of per-class statistics.

    For each class present in the batch (n_k > 0) the running statistics keep the weight
    ``w = decay * W_k`` and the batch gets ``n_k``; the two are pooled like two samples
    (Chan et al.'s parallel formula), so the between-batch spread of the means is kept:

        mean'   = mean + n / (w + n) * delta,          delta = batch_mean - mean
        sq_dev' = (w sq_dev + n batch_sq_dev) / (w + n) + w n / (w + n)^2 ||delta||_p^2
        W'      = w + n

    The first observation of a class (W_k = 0) therefore initialises it, a batch holding
    more samples of a class moves it more, and absent classes are untouched. With decay 1
    this is exact pooling: merging two halves gives the whole batch's statistics (exactly
    for p = 2; for other p the between term ||delta||_p^2 is the natural analogue).

    Args:
        weight: (K,) running effective sample count W_k (0 for unseen classes).
        mean: (K, D) running class means.
        sq_dev: (K, P) running mean squared deviations, one column per p in ``norms``.
        batch_count: (K,) the batch's per-class counts.
        batch_mean: (K, D) the batch's class means.
        batch_sq_dev: (K, P) the batch's mean squared deviations.
        decay: weight kept by the old statistics per update, in [0, 1].
        norms: the p of each ``sq_dev`` column.

    Returns:
        (weight (K,), mean (K, D), sq_dev (K, P)).
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(
            f"decay must lie in [0, 1] (the weight the old statistics keep), got {decay}"
        )
    old = torch.where(batch_count > 0, decay * weight, weight)  # (K,)
    total = old + batch_count
    safe = total.clamp(min=torch.finfo(total.dtype).tiny)
    share = (batch_count / safe).unsqueeze(1)  # (K, 1): 0 for absent classes
    delta = batch_mean - mean  # (K, D)
    cross = share * (old / safe).unsqueeze(1)  # w n / (w + n)^2, no underflow to 0/0
    new_sq_dev = sq_dev + share * (batch_sq_dev - sq_dev) + cross * sq_pnorms(delta, norms)
    return total, torch.addcmul(mean, share, delta), new_sq_dev


# ----------------------------------------------------------------------------------------
# Margins and the two loss terms.


MARGIN_FLOOR = 0.1  # least a_k^(1/3) relative to the seen classes' mean, before normalising


def floored_roots(a: Tensor, seen_count: Tensor, c_bar: float = 1.0) -> tuple[Tensor, Tensor]:
    """(a^(1/3) floored, K; the normaliser) with ``gamma = floored / normaliser``: the
    margin formula on statistics ``a`` that are NaN for unseen classes (which stay NaN).

    Each cube root is floored at ``MARGIN_FLOOR`` of the seen classes' mean, then the mean
    over seen classes is normalised to ``c_bar``. ``a`` is clamped at the smallest normal
    number, so classes whose statistics are all zero get equal margins (c_bar) instead of
    0 / 0. ``seen_count``: the number of seen classes, at least 1. No host sync."""
    root = a.clamp(min=torch.finfo(a.dtype).tiny).pow(1.0 / 3.0)
    floored = root.clamp(min=root.nansum() / seen_count * MARGIN_FLOOR)
    norm = floored.nansum() / seen_count
    return floored, norm if c_bar == 1.0 else norm / c_bar


def class_margins(
    mean_sq_norm: Tensor, mean_sq_dev: Tensor, seen: Tensor, c_bar: float = 1.0
) -> Tensor:
    """Per-class logit margins gamma (K,) from class statistics.

    ``gamma_k = c_bar * a_k^(1/3) / mean_{seen j} a_j^(1/3)`` with ``a = mean_sq_norm +
    mean_sq_dev``. Unseen classes get ``c_bar`` and do not enter the mean, so the mean margin
    over seen classes is exactly ``c_bar``. If every seen class has a = 0 all margins are c_bar.
    ``a^(1/3)`` is floored at ``MARGIN_FLOOR`` (0.1) of its mean over the seen classes before
    normalising, so no margin falls below about a tenth of ``c_bar`` (``floored_roots``).

    Example:
        >>> class_margins(torch.tensor([1.0, 8.0, 5.0]), torch.tensor([0.0, 0.0, 3.0]),
        ...               seen=torch.tensor([True, True, False]))
        tensor([0.6667, 1.3333, 1.0000])
    """
    if c_bar <= 0:
        raise ValueError(f"c_bar must be > 0, got {c_bar}")
    # The floor keeps a class whose features are all zero (a = 0) from a margin near 0,
    # which would multiply its logits, loss and gradients by ~1e6.
    a = torch.where(seen, (mean_sq_norm + mean_sq_dev).clamp(min=0), torch.nan)
    floored, norm = floored_roots(a, seen.sum().clamp(min=1), c_bar)
    return torch.nan_to_num(floored / norm, nan=c_bar)


def _logit_margin_ce(logits: Tensor, targets: Tensor, margins: Tensor) -> Tensor:
    scale = margins.to(logits.dtype)[targets].unsqueeze(1)  # (B, 1)
    return F.cross_entropy(logits / scale, targets, reduction="none")


def logit_margin_cross_entropy(
    logits: Tensor, targets: Tensor, margins: Tensor, reduction: str = "mean"
) -> Tensor:
    """Cross-entropy of logits divided by the true class's margin, ``CE(z / gamma_y, y)``.

    Args:
        logits: (B, K).
        targets: (B,) integer labels.
        margins: (K,) positive margins (treated as constants: no gradient flows to them
            through this loss unless they require it).
        reduction: "mean" | "sum" | "none" (per-sample, shape (B,)).

    Example:
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> logit_margin_cross_entropy(z, torch.tensor([0]), torch.tensor([2.0, 1.0]))
        tensor(0.3133)
    """
    _checks.check_matrix(logits, "logits")
    _checks.check_targets_shape(targets, logits.shape[0])
    if margins.shape != (logits.shape[1],):
        raise ValueError(
            f"margins must have shape ({logits.shape[1]},), got {tuple(margins.shape)}"
        )
    _checks.check_values(targets, logits.shape[1], logits=logits, margins=margins)
    if not bool((margins > 0).all()):
        raise ValueError("margins must be > 0")
    with full_precision(logits):
        per_sample = _logit_margin_ce(as_fp32(logits), targets, as_fp32(margins))
    return _checks.reduce(per_sample, _checks.check_reduction(reduction))


def representation_margin_loss(
    features: Tensor,
    targets: Tensor,
    s_bar: Tensor | float,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """MR²'s representation margin term.

    Per sample ``log(1 + sum_{j != i, y_j = y_i} exp((||f_i - f_j||_2^2 - 2 s_bar) / T))``,
    computed as ``softplus(logsumexp(.))`` so it never overflows; 0 for a sample with no
    same-class partner in the batch. ``T = 1`` is the paper's formula. Memory O(B^2 + B*D).

    Args:
        features: (B, D).
        targets: (B,) integer labels.
        s_bar: mean squared intra-class deviation (2-norm); 2 * s_bar is the average
            intra-class pair distance, so pairs closer than that are barely penalised.
        temperature: divides the exponent (the authors' code uses 10 * D).
        reduction: "mean" | "sum" | "none".

    Example:
        >>> f = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
        >>> representation_margin_loss(f, torch.tensor([0, 0, 1]), s_bar=0.5, reduction="none")
        tensor([0.6931, 0.6931, 0.0000])
    """
    _checks.check_matrix(features, "features")
    _checks.check_targets_shape(targets, features.shape[0])
    _checks.check_positive(temperature, "temperature")
    s = torch.as_tensor(s_bar, dtype=torch.float64)
    if s.numel() != 1 or not torch.isfinite(s):
        raise ValueError(f"s_bar must be a finite scalar, got {s_bar}")
    _checks.check_values(targets, int(targets.max()) + 1, features=features)
    with full_precision(features):
        f = as_fp32(features)
        per_sample = representation_margin(f, targets, torch.as_tensor(s_bar).to(f), temperature)
    return _checks.reduce(per_sample, _checks.check_reduction(reduction))
