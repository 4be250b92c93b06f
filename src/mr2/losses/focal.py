"""Focal loss (Lin et al., 2017)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


def focal_loss(logits: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """Per sample ``-(1 - p_y)^gamma log p_y`` (B,); gamma = 0 is cross-entropy."""
    logp = F.log_softmax(logits, dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)
    return -((1 - logp.exp()).clamp(min=0) ** gamma) * logp


@register("focal", "focal loss: down-weights well-classified samples")
class FocalLoss(ClassLoss):
    def __init__(self, num_classes: int, *, gamma: float = 2.0, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        return focal_loss(logits, targets, self.gamma)
