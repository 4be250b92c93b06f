"""Plain cross-entropy (ERM), in the common calling convention."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


@register("ce", "cross-entropy (ERM)")
class CrossEntropy(ClassLoss):
    """``-log softmax(z)_y`` per sample."""

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets, reduction="none")
