"""Mixed targets (mixup, cutmix) for every loss of mr2, MR² included.

``mixed_loss(loss_fn, logits, features, y_a, y_b, lam) = lam * l(y_a) + (1 - lam) * l(y_b)``,
the two-label decomposition timm's and torchvision's mixup targets stand for. For a loss
with running class statistics (MR²), the statistics are updated once per batch with each
sample's dominant label (``y_a`` when ``lam >= 0.5``, else ``y_b``), then both terms are
computed with those margins: a mixed sample moves the statistics of the class it mostly is,
and is never counted twice. Soft (B, K) targets are refused by every mr2 loss: the class
statistics need one label per sample.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


def mixed_loss(
    loss_fn: nn.Module,
    logits: Tensor,
    features: Tensor | None,
    y_a: Tensor,
    y_b: Tensor,
    lam: float,
) -> Tensor:
    """``lam * loss_fn(logits, features, y_a) + (1 - lam) * loss_fn(logits, features, y_b)``
    with statistics updated once, from the dominant labels (see the module docstring)."""
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    freeze = getattr(loss_fn, "statistics_frozen", None)
    if freeze is None:
        return lam * loss_fn(logits, features, y_a) + (1.0 - lam) * loss_fn(logits, features, y_b)
    if features is None:
        raise ValueError(f"{type(loss_fn).__name__} needs features to update its statistics")
    stateful: Any = loss_fn  # a loss with class statistics (MR2Loss, CenterLoss)
    if stateful.training and not stateful.frozen:
        dominant = y_a if lam >= 0.5 else y_b
        keep = dominant != stateful.ignore_index if stateful.ignore_index is not None else None
        f, y = (features, dominant) if keep is None else (features[keep], dominant[keep])
        if len(y):
            stateful.update_statistics(f, y)
    with freeze():
        a = loss_fn(logits, features, y_a)
        b = loss_fn(logits, features, y_b)
    return lam * a + (1.0 - lam) * b
