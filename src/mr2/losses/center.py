"""Center loss (Wen et al., 2016) added to cross-entropy.

``CE + lambda/2 * ||f - c_y||^2``; the centers are buffers moved toward each class's
features with the paper's rule ``c_j <- c_j - alpha * sum_{y_i=j}(c_j - f_i) / (1 + n_j)``
after each training step (sums taken over all processes), not learned by the optimiser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

from mr2 import distributed
from mr2.functional import class_sums_packed
from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


@register("center", "cross-entropy + center loss (feature term)")
class CenterLoss(ClassLoss):
    centers: Tensor

    uses_features = True

    def __init__(
        self,
        num_classes: int,
        *,
        lambda_center: float = 0.01,
        alpha: float = 0.5,
        process_group: ProcessGroup | None = None,
        **kwargs,
    ) -> None:
        super().__init__(num_classes, **kwargs)
        if not (lambda_center >= 0 and 0 <= alpha <= 1):
            raise ValueError(f"need lambda_center >= 0, alpha in [0, 1]: {lambda_center}, {alpha}")
        self.lambda_center, self.alpha = float(lambda_center), float(alpha)
        self.process_group = process_group
        self.register_buffer("centers", torch.zeros(num_classes, 0))  # sized on first use

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        incoming = state_dict.get(prefix + "centers")
        if incoming is not None and incoming.shape != self.centers.shape:
            self.centers = self.centers.new_zeros(incoming.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def update_centers(self, features: Tensor, targets: Tensor) -> None:
        packed = distributed.all_reduce_sum(
            class_sums_packed(features, targets, self.num_classes), self.process_group
        )
        count, sums = packed[:, :1], packed[:, 1:]
        delta = (count * self.centers - sums) / (1 + count)  # (K, D), 0 for absent classes
        self.centers.sub_(self.alpha * delta)

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        features = self._features(features)
        if self.centers.shape[1] != features.shape[1]:
            if self.centers.shape[1]:
                raise ValueError(
                    f"features have {features.shape[1]} columns, centers {self.centers.shape[1]}"
                )
            self.centers = features.new_zeros(self.num_classes, features.shape[1])
        pull = (features - self.centers[targets]).square().sum(dim=1)  # (B,)
        loss = F.cross_entropy(logits, targets, reduction="none") + 0.5 * self.lambda_center * pull
        if self.training:
            self.update_centers(features.detach(), targets)
        return loss
