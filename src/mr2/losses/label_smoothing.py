"""Label smoothing (Szegedy et al., 2016)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


def label_smoothing_cross_entropy(logits: Tensor, targets: Tensor, smoothing: float) -> Tensor:
    """Per sample ``(1 - eps) * (-log p_y) + eps * mean_j(-log p_j)`` (B,): cross-entropy
    against the target mixed with the uniform distribution, as ``F.cross_entropy``'s
    ``label_smoothing``."""
    logp = F.log_softmax(logits, dim=1)
    nll = -logp.gather(1, targets.unsqueeze(1)).squeeze(1)
    return (1 - smoothing) * nll - smoothing * logp.mean(dim=1)


@register("label_smoothing", "cross-entropy with label smoothing")
class LabelSmoothing(ClassLoss):
    def __init__(self, num_classes: int, *, smoothing: float = 0.1, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must lie in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(logits, targets, self.smoothing)
