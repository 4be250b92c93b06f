"""``DisparityMetric``: mr2's class-wise disparity summary as a ``torchmetrics.Metric``
(needs torchmetrics: extra ``metrics``), for ``MetricCollection`` and Lightning's logging.

It accumulates the confusion counts (a ``sum``-reduced state, so torchmetrics' DDP sync
adds the counts of every process: each sample counts once) and computes per-class accuracy
(NaN for classes without samples) and the summary of ``mr2.metrics.disparity_summary``.

Easy / medium / hard are never ranked on the accuracies they score: with a ``reference``
(pass validation accuracies, or an earlier model's) they are ranked on it; without one they
are cross-fitted: each class's samples alternate between two halves in arrival order, the
classes are ranked on one half and scored on the other, then the reverse, averaged
(``mr2.metrics.hard``). Worst class, worst 10 % and max - min are order statistics of the
accuracies themselves, as everywhere in mr2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from mr2.metrics.classwise import accuracy_from_confusion, confusion_counts
from mr2.metrics.hard import crossfit_groups
from mr2.metrics.summary import SCALAR_FIELDS, disparity_summary


class DisparityMetric(Metric):
    """Per-class accuracy and its disparity summary, accumulated over batches / processes.

    Args:
        num_classes: K.
        reference: optional (K,) accuracies that rank classes into easy / medium / hard (e.g.
            the ERM baseline's validation accuracies); default: cross-fitted halves of the
            samples this metric sees (never the accuracies it scores).
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
    # forward() updates the accumulated state itself: the cross-fitting halves follow each
    # class's arrival order over all batches, not within each batch
    full_state_update = True
    confusion: Tensor
    halves: Tensor

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
        halves = torch.zeros(2, 2, num_classes, dtype=torch.long)  # (half, right/total, K)
        self.add_state("halves", default=halves, dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """``preds``: (B,) labels or (B, K) logits / probabilities; ``target``: (B,)."""
        counts = confusion_counts(preds.detach(), target, self.num_classes)
        self.confusion += counts.to(self.confusion.device)
        y = target.long().to(self.halves.device)
        pred = preds.detach().argmax(1) if preds.dim() == 2 else preds.detach()
        hit = pred.long().to(y.device) == y
        seen = self.halves[:, 1].sum(0)  # samples of each class so far, both halves
        onehot = torch.nn.functional.one_hot(y, self.num_classes)
        position = seen[y] + (onehot.cumsum(0) * onehot).sum(1) - 1  # arrival order
        half = position % 2
        for h in (0, 1):
            mask = half == h
            self.halves[h, 0] += torch.bincount(y[mask & hit], minlength=self.num_classes)
            self.halves[h, 1] += torch.bincount(y[mask], minlength=self.num_classes)

    def compute(self) -> dict[str, Tensor]:
        accuracy = accuracy_from_confusion(self.confusion).cpu()
        summary = disparity_summary(
            accuracy,
            reference=self.reference,
            class_counts=self.confusion.sum(1).cpu(),
            worst_fraction=self.worst_fraction,
        ).as_dict()
        if self.reference is None:
            summary.update(self._crossfit(accuracy))
        device = self.confusion.device
        out = {f: torch.tensor(float(summary[f]), device=device) for f in SCALAR_FIELDS}
        if self.per_class:
            out["per_class"] = accuracy.to(device)
        return out

    def _crossfit(self, accuracy: Tensor) -> dict[str, float]:
        """Easy / medium / hard cross-fitted on the two halves of the samples seen."""
        right, total = self.halves[:, 0].double().cpu(), self.halves[:, 1].double().cpu()
        halves = torch.where(total > 0, right / total.clamp(min=1), torch.nan)
        return crossfit_groups(accuracy, halves)


class DisparityScalar(DisparityMetric):
    """One number of the summary (``field``, e.g. "worst_class", "hard", "gap") as a scalar
    metric: what Lightning's ``self.log(name, metric)`` and a ``MetricCollection`` expect.
    Several of them over the same predictions share their state in a collection
    (torchmetrics' compute groups).

    Example:
        >>> from torchmetrics import MetricCollection
        >>> c = MetricCollection({"worst": DisparityScalar(3, "worst_class"),
        ...                       "mean": DisparityScalar(3, "mean_class")})
        >>> c.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
        >>> {k: round(float(v), 2) for k, v in c.compute().items()}
        {'mean': 0.67, 'worst': 0.0}
    """

    def __init__(self, num_classes: int, field: str = "worst_class", **kwargs: Any) -> None:
        if field not in SCALAR_FIELDS:
            raise ValueError(f"field must be one of {', '.join(SCALAR_FIELDS)}, got {field!r}")
        super().__init__(num_classes, **{**kwargs, "per_class": False})
        self.field = field  # (higher is better, except for std, gap, ratio and cv)

    def compute(self) -> Tensor:  # type: ignore[override]
        return super().compute()[self.field]
