"""Logit-adjusted loss (Menon et al., 2021)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.priors import log_prior
from mr2.losses.registry import register


def logit_adjusted_cross_entropy(logits: Tensor, targets: Tensor, offsets: Tensor) -> Tensor:
    """Per sample ``CE(z + offsets, y)`` (B,), offsets (K,) e.g. ``tau * log pi``."""
    return F.cross_entropy(logits + offsets, targets, reduction="none")


@register("logit_adjustment", "logit adjustment: CE(z + tau log pi) (= CE on balanced data)")
class LogitAdjustment(ClassLoss):
    offsets: Tensor

    def __init__(self, num_classes: int, *, class_counts=None, tau: float = 1.0, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.register_buffer("offsets", tau * log_prior(num_classes, class_counts))

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        return logit_adjusted_cross_entropy(logits, targets, self.offsets.to(logits.dtype))
