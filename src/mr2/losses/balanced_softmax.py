"""Balanced softmax (Ren et al., 2020): logit adjustment with tau = 1 (offsets log n_j)."""

from __future__ import annotations

from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.logit_adjustment import logit_adjusted_cross_entropy
from mr2.losses.priors import log_prior
from mr2.losses.registry import register


@register("balanced_softmax", "balanced softmax: CE(z + log n_j) (= CE on balanced data)")
class BalancedSoftmax(ClassLoss):
    offsets: Tensor

    def __init__(self, num_classes: int, *, class_counts=None, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        # log n_j and log pi_j differ by a constant, which the softmax ignores.
        self.register_buffer("offsets", log_prior(num_classes, class_counts))

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        return logit_adjusted_cross_entropy(logits, targets, self.offsets.to(logits.dtype))
