"""Class-count helpers shared by the count-based losses (LDAM, logit adjustment, VS,
balanced softmax). Without counts every class counts the same: on balanced data these
losses reduce to (a fixed-margin or shifted) cross-entropy, as MR²'s paper notes."""

from __future__ import annotations

import torch
from torch import Tensor


def class_counts_tensor(num_classes: int, class_counts) -> Tensor:
    """(K,) float64 counts; all ones when ``class_counts`` is None."""
    if class_counts is None:
        return torch.ones(num_classes, dtype=torch.float64)
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.shape != (num_classes,) or not bool(torch.isfinite(counts).all()):
        raise ValueError(f"class_counts must be {num_classes} finite values, got {counts.shape}")
    if bool((counts <= 0).any()):
        raise ValueError("class_counts must all be > 0")
    return counts


def log_prior(num_classes: int, class_counts) -> Tensor:
    """log pi_j = log(n_j / sum n) (K,), float32."""
    counts = class_counts_tensor(num_classes, class_counts)
    return (counts / counts.sum()).log().float()
