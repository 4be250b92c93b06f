"""Input validation shared by losses and metrics: clear ``ValueError``s, never asserts.

Shape and dtype checks are free (metadata only). Value checks (finite entries, label range)
need one host sync, so they are fused into a single reduction and can be switched off by
callers that must stay sync-free on an accelerator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor


def is_soft(targets: Tensor) -> bool:
    """(B, K) floating targets: class probabilities (mixup / cutmix / label smoothing)."""
    return targets.dim() == 2 and targets.dtype.is_floating_point


def check_targets_shape(targets: Tensor, batch: int, name: str = "targets") -> None:
    if is_soft(targets):
        raise ValueError(
            f"soft (B, K) {name} are not supported here; pass class indices (B,) (for "
            "metrics: targets.argmax(1) of one-hot rows)"
        )
    if targets.dim() != 1:
        raise ValueError(f"{name} must be 1-D (B,), got shape {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {targets.dtype}")
    if targets.shape[0] != batch:
        raise ValueError(f"batch sizes differ: {name} has {targets.shape[0]}, expected {batch}")


def check_matrix(x: Tensor, name: str, cols: int | None = None) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (B, {'K' if cols else 'D'}), got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if cols is not None and x.shape[1] != cols:
        raise ValueError(f"{name} has {x.shape[1]} columns, expected num_classes = {cols}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B = 0)")


def check_values(
    targets: Tensor, num_classes: int, label_name: str = "targets", **tensors: Tensor
) -> None:
    """One host sync: labels in [0, num_classes) and every named tensor finite.

    Finiteness is read from each tensor's sum (one reduction: NaN or Inf anywhere makes it
    non-finite; ``isfinite(x).all()`` costs several passes). A sum can also overflow on huge
    but finite values, so only a non-finite sum is confirmed entry by entry before raising.
    """
    labels = bool(targets.numel())
    checked = [*torch.aminmax(targets.detach())] if labels else []
    checked += [_sum(t) for t in tensors.values()]
    if not checked:
        return
    values = torch.stack([v.to(torch.float64) for v in checked]).tolist()
    if labels:
        lo, hi = int(values[0]), int(values[1])
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{label_name} must lie in [0, {num_classes}), got values in [{lo}, {hi}]"
            )
        values = values[2:]
    _check_finite(values, tensors)


def _check_finite(totals: list[float], tensors: dict[str, Tensor]) -> None:
    """Raise for the first tensor whose total is not finite and that holds NaN or Inf."""
    for total, (name, t) in zip(totals, tensors.items(), strict=True):
        if not math.isfinite(total) and not bool(torch.isfinite(t).all()):
            hint = DIVERGED if name in ("logits", "features") else ""
            raise ValueError(f"{name} contains NaN or Inf{hint}")


def check_probabilities(targets: Tensor, **tensors: Tensor) -> None:
    """Soft targets (B, K): finite, non-negative rows that sum to 1 (to 1e-3), and every
    named tensor finite; one host sync."""
    t = targets.detach()
    row_error = (t.sum(1, dtype=torch.float32) - 1.0).abs().amax()
    checked = [t.amin().to(torch.float32), row_error, *(_sum(x) for x in tensors.values())]
    low, error, *totals = torch.stack([v.to(torch.float64) for v in checked]).tolist()
    if not (low >= 0.0 and error <= 1e-3):
        raise ValueError(
            "soft targets must be probabilities: entries >= 0 and rows summing to 1 (got a "
            f"smallest entry {low:.3g} and a row sum off by {error:.3g}); pass class "
            "indices (B,) for hard labels"
        )
    _check_finite(totals, tensors)


DIVERGED = (
    " (in training this usually means the model diverged at an earlier step: a learning rate, "
    "or a loss weight such as MR²'s lambda_rep, too large; or the inputs hold NaN)"
)


def _sum(t: Tensor) -> Tensor:
    """Sum in float32 (float64 for float64 input), so half precision cannot overflow it."""
    return t.detach().sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32)


def check_positive(value: float, name: str, allow_zero: bool = False) -> float:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(
            f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}"
        )
    return float(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{name} must be {listed}, got {value!r}")
    return str(value)


def check_reduction(reduction: str) -> str:
    return check_choice(reduction, "reduction", ("mean", "sum", "none"))


def reduce(values: Tensor, reduction: str) -> Tensor:
    """Apply an explicit reduction to per-sample values (B,)."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def integer_labels(values: Any, name: str = "labels") -> np.ndarray:
    """``values`` as a 1-D int64 array of class indices; probabilities, NaN, fractional,
    negative or boolean labels are refused (never silently cast)."""
    a = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,) class indices, got shape {a.shape}")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integer class indices, got dtype {a.dtype} (probabilities or "
            "fractional labels are not labels; cast real labels with .astype(np.int64))"
        )
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {int(a.min())}")
    return a.astype(np.int64)


MAX_NAME = 128  # characters of a method name (it names folders, table rows and plot labels)


def name_problem(value: Any, what: str = "method") -> str | None:
    """Why ``value`` cannot be a method name (it becomes a folder, a table cell and a plot
    label): not a string, empty, longer than ``MAX_NAME``, a control character (newline,
    NUL, ...), a path separator, "." or ".."; None when it can."""
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string, got {value!r}"
    if len(value) > MAX_NAME:
        return f"{what} has {len(value)} characters, more than {MAX_NAME}: {value[:40]!r}..."
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        return f"{what} {value!r} holds the control character {bad!r}: use printable characters"
    if "/" in value or "\\" in value or value in (".", ".."):
        return f"{what} must be a plain name (not '.', '..', no '/' or '\\'), got {value!r}"
    return None
