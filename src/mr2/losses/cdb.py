"""Class-difficulty-based weighting, CDB (Sinha et al., 2020).

Each class's cross-entropy is weighted by ``w_c ∝ (1 - a_c)^tau``, with a_c the class's
accuracy on the *validation* split, refreshed by the training loop (``update_difficulty``)
after each evaluation. Weights are normalised to mean 1 over classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


def cdb_weights(per_class_accuracy: Tensor, tau: float) -> Tensor:
    """(K,) weights ``(1 - a)^tau`` scaled to mean 1; NaN accuracies (no validation sample)
    count as the mean difficulty; all-zero difficulty gives uniform weights."""
    acc = per_class_accuracy.double()
    difficulty = 1 - acc
    known = ~torch.isnan(difficulty)
    fill = difficulty[known].mean() if bool(known.any()) else torch.tensor(1.0).double()
    difficulty = torch.where(known, difficulty, fill).clamp(min=0) ** tau
    total = difficulty.sum()
    if total <= 0:
        return torch.ones_like(difficulty)
    return difficulty * len(difficulty) / total


@register("cdb", "CDB: CE weighted by class difficulty (1 - val accuracy)^tau")
class CDBLoss(ClassLoss):
    class_weights: Tensor

    def __init__(self, num_classes: int, *, tau: float = 1.0, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        if not tau >= 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        self.tau = float(tau)
        self.register_buffer("class_weights", torch.ones(num_classes))

    @torch.no_grad()
    def update_difficulty(self, per_class_accuracy: Tensor) -> None:
        """Refresh the weights from per-class validation accuracy (K,)."""
        acc = torch.as_tensor(per_class_accuracy)
        if acc.shape != (self.num_classes,):
            raise ValueError(f"expected {self.num_classes} accuracies, got {tuple(acc.shape)}")
        self.class_weights.copy_(cdb_weights(acc, self.tau))

    def on_validation(self, per_class_accuracy: Tensor) -> None:
        self.update_difficulty(per_class_accuracy)  # from validation, never test

    def internals(self) -> dict[str, list[float]]:
        return {"class_weights": self.class_weights.tolist()}

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, targets, reduction="none")
        return self.class_weights.to(logits.dtype)[targets] * ce
