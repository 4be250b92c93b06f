"""Per-class feature spread: ||mu_k||^2 and ||s_k||^2 = E_k ||f - mu_k||^2 (2-norm), from
sufficient statistics that add up over batches and processes (float64)."""

from __future__ import annotations

import torch
from torch import Tensor


def feature_sums(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(K, 2 + D) per-class sums of [1, ||f||^2, f] in float64 (add them across batches)."""
    f = features.double().flatten(1)
    rows = torch.cat([torch.ones_like(f[:, :1]), f.square().sum(1, keepdim=True), f], 1)
    return rows.new_zeros(num_classes, rows.shape[1]).index_add_(0, labels.to(f.device), rows)


def class_spread(sums: Tensor) -> dict[str, list[float]]:
    """{"norm_sq": ||mu_k||^2, "spread": ||s_k||^2} per class from ``feature_sums``; NaN for
    classes without samples.

    Example:
        >>> f, y = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]]), torch.tensor([0, 0, 1])
        >>> class_spread(feature_sums(f, y, 2))
        {'norm_sq': [1.0, 2.0], 'spread': [1.0, 0.0]}
    """
    n = sums[:, 0].clamp(min=1)
    mean = sums[:, 2:] / n.unsqueeze(1)
    norm_sq = mean.square().sum(1)
    spread = (sums[:, 1] / n - norm_sq).clamp(min=0)
    missing = sums[:, 0] == 0
    nan = torch.full_like(norm_sq, float("nan"))
    return {
        "norm_sq": torch.where(missing, nan, norm_sq).tolist(),
        "spread": torch.where(missing, nan, spread).tolist(),
    }
