"""Supervised contrastive loss (Khosla et al., 2020) added to cross-entropy.

Single view: positives of an anchor are the other same-class samples in the batch. On
L2-normalised features z, with s_ij = z_i . z_j / tau::

    l_sup(i) = -1/|P(i)| sum_{p in P(i)} [ s_ip - log sum_{a != i} exp(s_ia) ]

0 for an anchor without positives. The loss is ``CE + lambda_supcon * l_sup``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


def supervised_contrastive(features: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """Per-anchor supervised contrastive loss (B,); O(B^2) memory."""
    z = F.normalize(features, dim=1)
    sim = z @ z.t() / temperature  # (B, B)
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_prob = sim - torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positive = (targets.unsqueeze(0) == targets.unsqueeze(1)) & ~self_mask
    n_pos = positive.sum(dim=1)
    total = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -total / n_pos.clamp(min=1)


@register("supcon", "cross-entropy + supervised contrastive term (feature term)")
class SupConLoss(ClassLoss):
    uses_features = True

    def __init__(
        self, num_classes: int, *, lambda_supcon: float = 0.1, temperature: float = 0.1, **kwargs
    ) -> None:
        super().__init__(num_classes, **kwargs)
        if not (lambda_supcon >= 0 and temperature > 0):
            raise ValueError(
                f"need lambda_supcon >= 0, temperature > 0: {lambda_supcon}, {temperature}"
            )
        self.lambda_supcon, self.temperature = float(lambda_supcon), float(temperature)

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        features = self._features(features)
        ce = F.cross_entropy(logits, targets, reduction="none")
        return ce + self.lambda_supcon * supervised_contrastive(features, targets, self.temperature)
