"""LDAM: label-distribution-aware margins (Cao et al., 2019)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.priors import class_counts_tensor
from mr2.losses.registry import register


def ldam_loss(logits: Tensor, targets: Tensor, margins: Tensor, scale: float) -> Tensor:
    """Per sample ``CE(s * (z - Delta_y e_y), y)`` (B,): the true class's logit is lowered by
    its margin before the softmax."""
    shifted = logits.scatter_add(1, targets.unsqueeze(1), -margins[targets].unsqueeze(1))
    return F.cross_entropy(scale * shifted, targets, reduction="none")


@register("ldam", "LDAM: margins Delta_j ∝ n_j^(-1/4) (a fixed margin on balanced data)")
class LDAMLoss(ClassLoss):
    """Margins ``Delta_j = max_margin * n_j^(-1/4) / max_k n_k^(-1/4)``. The paper uses
    ``scale=30`` with cosine (normalised) logits; for a plain linear head keep 1."""

    margins: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        class_counts=None,
        max_margin: float = 0.5,
        scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(num_classes, **kwargs)
        if not (max_margin >= 0 and scale > 0):
            raise ValueError(f"need max_margin >= 0 and scale > 0, got {max_margin}, {scale}")
        inv = class_counts_tensor(num_classes, class_counts) ** -0.25
        self.register_buffer("margins", (max_margin * inv / inv.max()).float())
        self.scale = float(scale)

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        return ldam_loss(logits, targets, self.margins.to(logits.dtype), self.scale)
