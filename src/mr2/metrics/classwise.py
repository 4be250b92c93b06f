"""Per-class accuracy (recall) from confusion counts: a functional core and a stateful metric.

Confusion counts are sufficient statistics: they add up across batches and processes, so the
stateful ``ClasswiseAccuracy`` sums them (never averages per-rank accuracies). A class
without samples has no accuracy: it is reported as NaN and flagged, never as 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

from mr2 import _checks, distributed


def _predictions(preds_or_logits: Tensor, num_classes: int) -> Tensor:
    if preds_or_logits.dim() == 2:
        if preds_or_logits.shape[1] != num_classes:
            raise ValueError(
                f"logits have {preds_or_logits.shape[1]} columns, expected num_classes = "
                f"{num_classes}"
            )
        if not bool(torch.isfinite(preds_or_logits).all()):
            raise ValueError("logits contain NaN or Inf")
        return preds_or_logits.argmax(dim=1)
    if preds_or_logits.dim() != 1:
        raise ValueError(
            f"expected predictions (B,) or logits (B, K), got {tuple(preds_or_logits.shape)}"
        )
    _checks.check_targets_shape(preds_or_logits, preds_or_logits.shape[0], name="predictions")
    return preds_or_logits


def confusion_counts(preds_or_logits: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """(K, K) int64 counts: row = true class, column = predicted class.

    Example:
        >>> confusion_counts(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
        tensor([[1, 1],
                [0, 1]])
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    preds = _predictions(torch.as_tensor(preds_or_logits), num_classes)  # lists, NumPy too
    targets = torch.as_tensor(targets)
    _checks.check_targets_shape(targets, preds.shape[0])
    if preds.numel():
        _checks.check_values(targets, num_classes)
        _checks.check_values(preds, num_classes, label_name="predictions")
    flat = targets.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def accuracy_from_confusion(confusion: Tensor) -> Tensor:
    """Per-class recall (K,) float64; NaN for classes with no samples."""
    support = confusion.sum(dim=1).double()
    correct = confusion.diagonal().double()
    return torch.where(support > 0, correct / support.clamp(min=1), torch.nan)


def classwise_accuracy(preds_or_logits: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Per-class accuracy (recall) (K,), NaN where a class has no samples.

    Args:
        preds_or_logits: predicted labels (B,) or logits (B, K) (argmax is taken).
        targets: (B,) true labels in [0, K).
        num_classes: K.

    Example:
        >>> classwise_accuracy(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1]), 3)
        tensor([0.5000, 0.5000,    nan], dtype=torch.float64)
    """
    return accuracy_from_confusion(confusion_counts(preds_or_logits, targets, num_classes))


@dataclass(frozen=True)
class ClasswiseResult:
    """What ``ClasswiseAccuracy.compute()`` returns.

    Attributes:
        accuracy: (K,) per-class accuracy, NaN for missing classes.
        support: (K,) number of samples per class.
        missing: (K,) bool, True where a class had no samples.
        confusion: (K, K) counts, rows = true class.
        overall: sample-weighted accuracy over all samples.
        halves: (2, K) per-class accuracy on the two cross-fitting halves of the samples
            (``mr2.metrics.hard``), when the evaluation asked for them.
    """

    accuracy: Tensor
    support: Tensor
    missing: Tensor
    confusion: Tensor
    overall: float
    halves: Tensor | None = None


class ClasswiseAccuracy(nn.Module):
    """Accumulates confusion counts over batches (and processes) for per-class accuracy.

    ``update`` adds a batch; ``compute`` sums the counts over all processes when
    torch.distributed is initialised (every rank must call it) and returns a
    ``ClasswiseResult``; ``reset`` clears the counts. Counts are a registered buffer.

    Example:
        >>> metric = ClasswiseAccuracy(3)
        >>> metric.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
        >>> metric.update(torch.tensor([1]), torch.tensor([1]))
        >>> result = metric.compute()
        >>> result.accuracy
        tensor([0.5000, 1.0000,    nan], dtype=torch.float64)
        >>> result.missing.tolist(), round(result.overall, 4)
        ([False, False, True], 0.6667)
    """

    confusion: Tensor

    def __init__(self, num_classes: int, process_group: ProcessGroup | None = None) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.process_group = process_group
        self.register_buffer("confusion", torch.zeros(num_classes, num_classes, dtype=torch.long))

    @torch.no_grad()
    def update(self, preds_or_logits: Tensor, targets: Tensor) -> None:
        counts = confusion_counts(preds_or_logits.detach(), targets, self.num_classes)
        self.confusion += counts.to(self.confusion.device)

    def compute(self) -> ClasswiseResult:
        confusion = distributed.all_reduce_sum(self.confusion.clone(), self.process_group)
        support = confusion.sum(dim=1)
        total = int(support.sum())
        overall = float(confusion.diagonal().sum()) / total if total else float("nan")
        return ClasswiseResult(
            accuracy=accuracy_from_confusion(confusion),
            support=support,
            missing=support == 0,
            confusion=confusion,
            overall=overall,
        )

    def reset(self) -> None:
        self.confusion.zero_()
