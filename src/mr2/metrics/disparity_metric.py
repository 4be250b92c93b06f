"""``DisparityMetric``: mr2's class-wise disparity summary as a ``torchmetrics.Metric``
(needs torchmetrics: extra ``metrics``), for ``MetricCollection`` and Lightning's logging.

It accumulates the confusion counts (a ``sum``-reduced state, so torchmetrics' DDP sync
adds the counts of every process: each sample counts once) and computes per-class accuracy
(NaN for classes without samples) and the summary of ``mr2.metrics.disparity_summary``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from mr2.metrics.classwise import accuracy_from_confusion, confusion_counts
from mr2.metrics.summary import SCALAR_FIELDS, disparity_summary


class DisparityMetric(Metric):
    """Per-class accuracy and its disparity summary, accumulated over batches / processes.

    Args:
        num_classes: K.
        reference: optional (K,) accuracies that rank classes into easy / medium / hard (e.g.
            the ERM baseline's); default: this metric's own accuracies.
        per_class: also return the (K,) per-class accuracies under "per_class" (keep False
            for ``self.log_dict``, which takes scalars only).
        worst_fraction: the fraction of classes averaged in ``worst_fraction_mean``.

    ``compute()`` returns a dict of 0-dim float tensors: overall, mean_class, easy, medium,
    hard, worst_class, worst_fraction_mean (the worst 10 %), std, gap (max - min), ratio,
    geometric_mean, cv, and ``per_class`` if asked.

    Example:
        >>> m = DisparityMetric(3)
        >>> m.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
        >>> out = m.compute()
        >>> round(float(out["worst_class"]), 2), round(float(out["mean_class"]), 2)
        (0.0, 0.67)
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    confusion: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        reference: Tensor | None = None,
        per_class: bool = False,
        worst_fraction: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes, self.per_class, self.worst_fraction = (
            num_classes,
            per_class,
            worst_fraction,
        )
        self.reference = None if reference is None else torch.as_tensor(reference).double()
        zeros = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.add_state("confusion", default=zeros, dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """``preds``: (B,) labels or (B, K) logits / probabilities; ``target``: (B,)."""
        counts = confusion_counts(preds.detach(), target, self.num_classes)
        self.confusion += counts.to(self.confusion.device)

    def compute(self) -> dict[str, Tensor]:
        accuracy = accuracy_from_confusion(self.confusion).cpu()
        summary = disparity_summary(
            accuracy,
            reference=self.reference,
            class_counts=self.confusion.sum(1).cpu(),
            worst_fraction=self.worst_fraction,
        ).as_dict()
        device = self.confusion.device
        out = {f: torch.tensor(float(summary[f]), device=device) for f in SCALAR_FIELDS}
        if self.per_class:
            out["per_class"] = accuracy.to(device)
        return out
