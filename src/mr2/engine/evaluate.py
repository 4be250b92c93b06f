"""Evaluation: every sample counted exactly once across processes (rank r takes samples
r, r + W, ...; no padding), confusion counts summed, then per-class accuracy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import cast

import torch
from torch import nn

from mr2 import distributed
from mr2.data import Split
from mr2.metrics import (
    ClasswiseAccuracy,
    ClasswiseResult,
    accuracy_from_confusion,
    disparity_summary,
)
from mr2.metrics.hard import crossfit_halves, labels_digest
from mr2.metrics.spread import class_spread, feature_sums
from mr2.records.result import SplitScores


def evaluate(
    model: nn.Module,
    split: Split,
    num_classes: int,
    *,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    halves: bool = False,
) -> ClasswiseResult:
    """Per-class accuracy of ``model`` on ``split``; with ``halves`` also on the two
    cross-fitting halves of each class's samples (``mr2.metrics.hard.crossfit_halves``)."""
    result, _ = _evaluate(model, split, num_classes, batch_size, device, amp_dtype, halves, False)
    return result


def evaluate_with_features(
    model: nn.Module,
    split: Split,
    num_classes: int,
    *,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> tuple[ClasswiseResult, dict[str, list[float]]]:
    """``evaluate`` with halves, and from the same forward passes the per-class ||mu_k||^2
    and spread ||s_k||^2 = E_k ||f - mu_k||^2 (2-norm) of the model's features, from
    float64 sums over all processes (each sample once)."""
    result, sums = _evaluate(model, split, num_classes, batch_size, device, amp_dtype, True, True)
    return result, class_spread(distributed.all_reduce_sum(cast(torch.Tensor, sums)))


@torch.no_grad()
def passes(
    model: nn.Module,
    split: Split,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The one evaluation loop: this process's share of ``split`` (rank r takes samples r,
    r + W, ...) in eval mode, without gradients, under autocast when ``amp_dtype`` is given:
    (sample indices, float32 logits, features, labels) per batch; the model's training mode
    is restored after, also when the caller stops early."""
    was_training = model.training
    model.eval()
    try:
        idx = torch.arange(distributed.rank(), len(split), distributed.world_size())
        for chunk in idx.split(batch_size):
            x = split.x[chunk].to(device, non_blocking=True)
            with torch.autocast(
                device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
            ):
                logits, f = model(x)
            yield chunk, logits.float(), f, split.y[chunk].to(device)
    finally:
        model.train(was_training)


def _evaluate(model, split, num_classes, batch_size, device, amp_dtype, halves, features):
    """One pass over this process's share of ``split``: (scores, feature sums or None)."""
    metric = ClasswiseAccuracy(num_classes).to(device)
    half_a = ClasswiseAccuracy(num_classes).to(device) if halves else None
    in_a = torch.from_numpy(crossfit_halves(split.y.numpy())) if halves else None
    sums = None
    for chunk, logits, f, y in passes(model, split, batch_size, device, amp_dtype):
        metric.update(logits, y)
        if half_a is not None and in_a is not None:
            mask = in_a[chunk].to(device)
            half_a.update(logits[mask], y[mask])
        if features:
            part = feature_sums(f, y, num_classes)
            sums = part if sums is None else sums + part
    if features and sums is None:  # no sample here: zeros (every process all-reduces)
        with torch.no_grad():
            _, f = model(split.x[:1].to(device))
        sums = feature_sums(f[:0], split.y[:0], num_classes)
    result = metric.compute()
    if half_a is not None:
        result = replace(result, halves=_halves(result.confusion, half_a.compute().confusion))
    return result, sums


def _halves(confusion: torch.Tensor, confusion_a: torch.Tensor) -> torch.Tensor:
    """(2, K) accuracies on half A and half B (the rest) from confusion counts."""
    return torch.stack(
        [accuracy_from_confusion(confusion_a), accuracy_from_confusion(confusion - confusion_a)]
    )


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Predicted labels (N,) of ``model`` in eval mode for inputs x (N, ...), on the CPU."""
    was_training = model.training
    model.eval()
    preds = [model(chunk.to(device))[0].argmax(1).cpu() for chunk in x.split(batch_size)]
    model.train(was_training)
    return torch.cat(preds)


def split_scores(result: ClasswiseResult, split: Split | None = None) -> SplitScores:
    """The typed record of one evaluation (result.json's ``test``, WiSE-FT's rows): the
    disparity summary weighted by class support, the halves when evaluated, and the
    digest of ``split``'s labels when given."""
    return SplitScores(
        result.overall,
        result.accuracy.tolist(),
        result.support.tolist(),
        result.confusion.tolist(),
        disparity_summary(result.accuracy, class_counts=result.support).as_dict(),
        halves=None if result.halves is None else result.halves.tolist(),
        labels_sha256=None if split is None else labels_digest(split.y),
    )
