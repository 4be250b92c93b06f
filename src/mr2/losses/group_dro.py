"""Class-level group DRO (Sagawa et al., 2020, Algorithm 1) with classes as groups.

Online: each training step, ``q_g <- q_g * exp(eta * L_g)`` and renormalise, where L_g is
class g's mean loss in the (global) batch; the loss is ``sum_g q_g L_g``. Per-class loss
sums and counts are summed across processes before the update, so q is identical on every
rank. q is a buffer (checkpointed); eval mode leaves it unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

from mr2 import distributed
from mr2.losses.base import ClassLoss
from mr2.losses.registry import register


def class_mean_losses(losses: Tensor, targets: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class sum of losses and counts, as one (K, 2) tensor's columns."""
    packed = losses.new_zeros(num_classes, 2)
    packed.index_add_(0, targets, torch.stack([losses, torch.ones_like(losses)], dim=1))
    return packed[:, 0], packed[:, 1]


@register("group_dro", "class-level group DRO: exponentiated weights on class losses")
class GroupDRO(ClassLoss):
    q: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        step_size: float = 0.01,
        process_group: ProcessGroup | None = None,
        **kwargs,
    ) -> None:
        super().__init__(num_classes, **kwargs)
        if not step_size >= 0:
            raise ValueError(f"step_size must be >= 0, got {step_size}")
        self.step_size = float(step_size)
        self.process_group = process_group
        self.register_buffer("q", torch.full((num_classes,), 1.0 / num_classes))

    @torch.no_grad()
    def global_class_counts(self, losses: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Per-class loss sums and counts of the global batch (summed over processes)."""
        sums, counts = class_mean_losses(losses.detach().float(), targets, self.num_classes)
        packed = distributed.all_reduce_sum(torch.stack([sums, counts]), self.process_group)
        return packed[0], packed[1]

    @torch.no_grad()
    def update_weights(self, sums: Tensor, counts: Tensor) -> None:
        group_loss = sums / counts.clamp(min=1)  # 0 for absent classes
        q = self.q * torch.exp(self.step_size * group_loss)
        self.q.copy_(q / q.sum())

    def internals(self) -> dict[str, list[float]]:
        return {"q": self.q.tolist()}

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, targets, reduction="none")
        world = 1
        if self.training:  # the global batch: collectives only where every rank trains
            sums, counts = self.global_class_counts(ce, targets)
            self.update_weights(sums, counts)
            world = distributed.world_size(self.process_group)
        else:
            counts = class_mean_losses(ce.detach(), targets, self.num_classes)[1]
        # sum_g q_g mean_{i in g} l_i over the global batch, written per sample so that the
        # base's local mean and DDP's average over W processes reduce to it:
        # weight_i = q_{y_i} * W * B_local / n_{y_i}(global).
        scale = self.q.to(ce.dtype)[targets] * (world * ce.shape[0]) / counts.to(ce.dtype)[targets]
        return ce * scale
