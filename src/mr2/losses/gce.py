"""Generalised cross-entropy (Zhang & Sabuncu, 2018): the biased model's loss in LfF."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


def generalized_cross_entropy(logits: Tensor, targets: Tensor, q: float) -> Tensor:
    """Per sample ``(1 - p_y^q) / q`` (B,); tends to cross-entropy as q -> 0 and emphasises
    easy samples for q > 0 (so a model trained with it latches onto the easy cues)."""
    logp = F.log_softmax(logits, dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)
    return -(q * logp).expm1() / q  # = (1 - p^q) / q, accurate for small q


@register("gce", "generalised cross-entropy (LfF's biased model)")
class GeneralizedCrossEntropy(ClassLoss):
    def __init__(self, num_classes: int, *, q: float = 0.7, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        if not 0 < q <= 1:
            raise ValueError(f"q must lie in (0, 1], got {q}")
        self.q = float(q)

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        return generalized_cross_entropy(logits, targets, self.q)
