"""Plain cross-entropy (ERM), in the common calling convention."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mr2 import _checks
from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


@register("ce", "cross-entropy (ERM)")
class CrossEntropy(ClassLoss):
    """``-log softmax(z / T)_y`` per sample. ``temperature`` T = 1 is ERM; other values are
    the global-temperature control for MR²'s ``c_bar`` (MR² with every margin equal to c_bar
    is exactly cross-entropy at T = c_bar)."""

    soft_targets = True  # (B, K) probabilities: -sum_k t_k log softmax(z / T)_k

    def __init__(self, num_classes: int, *, temperature: float = 1.0, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.temperature = _checks.check_positive(temperature, "temperature")

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return F.cross_entropy(logits, targets, reduction="none")


@register(
    "ce_temperature",
    "cross-entropy at a tuned global temperature: the control for MR²'s c_bar",
    CrossEntropy,
)
def ce_temperature(num_classes: int, **kwargs) -> CrossEntropy:
    """The same loss as ``ce``, under its own method name, so that a comparison can hold
    ERM (T = 1) and ERM at a validation-selected temperature side by side."""
    return CrossEntropy(num_classes, **kwargs)
