"""Disparity summary of a per-class accuracy vector: easy / medium / hard thirds, worst
classes, spread. Pure NumPy maths on (K,) vectors; NaN entries (classes without samples) are
left out of every statistic and listed in ``missing``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class DisparitySummary:
    """Class-wise disparity of one run (accuracies as fractions in [0, 1]).

    Attributes:
        overall: sample-weighted accuracy (class accuracies weighted by ``class_counts``;
            equal weights when no counts are given, i.e. a balanced test set).
        mean_class: unweighted mean of the per-class accuracies (balanced accuracy).
        easy, medium, hard: mean accuracy of the thirds of the classes ranked by the
            reference accuracy (highest first). See ``split_thirds`` for K not divisible by 3.
            Without a reference they are ranked on these very accuracies: "hard" is then the
            mean of the bottom third, an order statistic (biased low as the accuracy of the
            classes that are hard); reports rank on other data (``mr2.metrics.hard``).
        worst_class: lowest per-class accuracy; ``worst_class_index`` its class.
        worst_fraction_mean: mean of the worst ``ceil(worst_fraction * K)`` classes (>= 1).
        std: population standard deviation over classes (ddof = 0). Worst class, worst
            10 % and max - min are order statistics of the run's own accuracies: biased as
            estimates of the true worst class, but a method and a baseline are compared
            without bias by their paired per-seed differences.
        gap: max - min. ratio: min / max (NaN if max is 0). geometric_mean: of the class
            accuracies (0 if any class is at 0). cv: coefficient of variation std / mean.
        num_classes: classes counted (missing ones excluded). missing: their indices.
        groups: class indices of the easy, medium and hard thirds.
    """

    overall: float
    mean_class: float
    easy: float
    medium: float
    hard: float
    worst_class: float
    worst_class_index: int
    worst_fraction_mean: float
    std: float
    gap: float
    ratio: float
    geometric_mean: float
    cv: float
    num_classes: int
    missing: list[int] = field(default_factory=list)
    groups: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


SCALAR_FIELDS = (
    "overall",
    "mean_class",
    "easy",
    "medium",
    "hard",
    "worst_class",
    "worst_fraction_mean",
    "std",
    "gap",
    "ratio",
    "geometric_mean",
    "cv",
)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def split_thirds(order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split classes ordered easy-to-hard into thirds as ``np.array_split`` does: sizes
    differ by at most one and the earlier (easier) groups take the extra classes, so
    K = 10 gives 4 / 3 / 3 and K = 11 gives 4 / 4 / 3."""
    easy, medium, hard = np.array_split(order, 3)
    return easy, medium, hard


def rank_easy_to_hard(reference: np.ndarray) -> np.ndarray:
    """Class indices by decreasing reference accuracy; ties keep the lower index first."""
    return np.argsort(-reference, kind="stable")


def disparity_summary(
    per_class_accuracy: Any,
    *,
    reference: Any = None,
    class_counts: Any = None,
    worst_fraction: float = 0.1,
) -> DisparitySummary:
    """Summarise per-class accuracies.

    Args:
        per_class_accuracy: (K,) accuracies in [0, 1]; NaN marks a class without samples.
        reference: (K,) accuracies that rank the classes into easy / medium / hard (e.g. the
            ERM baseline's, so every method is judged on the same classes); defaults to
            ``per_class_accuracy`` itself.
        class_counts: (K,) test samples per class, for the sample-weighted ``overall``.
        worst_fraction: fraction of classes averaged in ``worst_fraction_mean``.

    Example:
        >>> s = disparity_summary([0.9, 0.5, 0.7, 0.3, 1.0, 0.6])
        >>> round(s.easy, 3), round(s.medium, 3), round(s.hard, 3), s.worst_class_index
        (0.95, 0.65, 0.4, 3)
    """
    acc, ref, counts = _summary_inputs(per_class_accuracy, reference, class_counts, worst_fraction)
    present = ~np.isnan(acc)
    idx = np.flatnonzero(present)
    a = acc[idx]
    groups = _thirds(ref, idx)
    means = {g: float(acc[c].mean()) if len(c) else float("nan") for g, c in groups.items()}
    w = counts[idx]
    worst_n = max(1, math.ceil(worst_fraction * len(a)))  # classes in the worst fraction
    mean, std = float(a.mean()), float(a.std())
    hi, lo = float(a.max()), float(a.min())
    return DisparitySummary(
        overall=float((a * w).sum() / w.sum()) if w.sum() > 0 else float("nan"),
        mean_class=mean,
        easy=means["easy"],
        medium=means["medium"],
        hard=means["hard"],
        worst_class=lo,
        worst_class_index=int(idx[np.argmin(a)]),
        worst_fraction_mean=float(np.sort(a)[:worst_n].mean()),
        std=std,
        gap=hi - lo,
        ratio=lo / hi if hi > 0 else float("nan"),
        geometric_mean=0.0 if lo == 0 else float(np.exp(np.log(a).mean())),
        cv=std / mean if mean > 0 else float("nan"),
        num_classes=len(a),
        missing=[int(i) for i in np.flatnonzero(~present)],
        groups={g: [int(i) for i in c] for g, c in groups.items()},
    )


def _summary_inputs(per_class_accuracy, reference, class_counts, worst_fraction: float):
    """(accuracies, reference, class counts) as (K,) arrays, checked with
    ``worst_fraction``."""
    if not 0 < worst_fraction <= 1:
        raise ValueError(f"worst_fraction must lie in (0, 1], got {worst_fraction}")
    acc = _as_numpy(per_class_accuracy)
    if acc.ndim != 1 or acc.size == 0:
        raise ValueError(f"per_class_accuracy must be a non-empty (K,) vector, got {acc.shape}")
    present = ~np.isnan(acc)
    if not present.any():
        raise ValueError("per_class_accuracy has no class with samples (all NaN)")
    if np.any((acc[present] < 0) | (acc[present] > 1)) or np.isinf(acc).any():
        raise ValueError("per-class accuracies must lie in [0, 1]")
    ref = acc if reference is None else _as_numpy(reference)
    if ref.shape != acc.shape:
        raise ValueError(f"reference has shape {ref.shape}, expected {acc.shape}")
    counts = np.ones_like(acc) if class_counts is None else _as_numpy(class_counts)
    if counts.shape != acc.shape or np.any(counts < 0):
        raise ValueError(f"class_counts must be a non-negative vector of shape {acc.shape}")
    return acc, ref, counts


def _thirds(ref: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Easy / medium / hard thirds of the classes ``idx``, ranked on ``ref`` (a class the
    reference does not rank counts as hardest)."""
    ref_present = np.nan_to_num(ref[idx], nan=-np.inf)
    order = idx[rank_easy_to_hard(ref_present)]
    return dict(zip(("easy", "medium", "hard"), split_thirds(order), strict=True))
