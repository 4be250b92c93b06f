"""Vector-scaling loss (Kini et al., 2021)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.priors import class_counts_tensor, log_prior
from mr2.losses.registry import register


def vs_loss(logits: Tensor, targets: Tensor, scales: Tensor, offsets: Tensor) -> Tensor:
    """Per sample ``CE(Delta * z + iota, y)`` (B,) with per-class Delta (K,) and iota (K,)."""
    return F.cross_entropy(logits * scales + offsets, targets, reduction="none")


@register("vs", "VS loss: multiplicative (n_j/n_max)^gamma and additive tau log pi_j")
class VSLoss(ClassLoss):
    scales: Tensor
    offsets: Tensor

    def __init__(
        self, num_classes: int, *, class_counts=None, gamma: float = 0.2, tau: float = 1.0, **kwargs
    ) -> None:
        super().__init__(num_classes, **kwargs)
        counts = class_counts_tensor(num_classes, class_counts)
        self.register_buffer("scales", ((counts / counts.max()) ** gamma).float())
        self.register_buffer("offsets", tau * log_prior(num_classes, class_counts))

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        return vs_loss(logits, targets, self.scales.to(logits.dtype), self.offsets.to(logits.dtype))
