"""``ClassOffsets``: per-class additive logit offsets fit after training on validation data
(the cheapest fix for a weak class: seconds, no retraining), applied to logits or carried
by a deployable model (``wrap``). The fitting is ``mr2.posthoc.fit``."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mr2 import _checks
from mr2.metrics.hard import ranked_groups
from mr2.posthoc.ascent import Goal
from mr2.posthoc.fit import OBJECTIVES, Scores, fit_offsets, scores, tail_size
from mr2.posthoc.model import OffsetModel
from mr2.records.storage import CorruptFileError, load_json, save_json

SCHEMA = 1


def _as_tensor(x: Any, name: str) -> Tensor:
    t = x.detach().cpu() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if name == "logits":
        if t.dim() != 2 or not t.is_floating_point():
            raise ValueError(f"logits must be a float (N, K) array, got {tuple(t.shape)} {t.dtype}")
        bad = int((~torch.isfinite(t)).any(1).sum())
        if bad:
            raise ValueError(f"logits of {bad} sample(s) hold NaN or Inf: fix the model's outputs")
        return t.float()
    return torch.from_numpy(_checks.integer_labels(t, name))


MIN_PER_CLASS = 30  # below this many validation samples a class's recall is mostly noise


def fit_warnings(before: Scores, after: Scores) -> list[str]:
    """What a user should know about a fit: a validation split too small to trust, a fit
    that saturates it, offsets left at zero (and why)."""
    out = []
    fewest = int(before.support.min())
    if fewest < MIN_PER_CLASS:
        out.append(
            f"a class has only {fewest} validation samples (< {MIN_PER_CLASS}): offsets fit on "
            "so few follow their noise and can lower the worst class on new data; carve a "
            "larger validation split"
        )
    if after.worst >= 1.0 or after.overall >= 1.0:
        out.append(
            "the offsets reach 100 % on validation: it can no longer tell better offsets "
            "from worse, and the fit is likely to overfit it"
        )
    if torch.equal(after.recall, before.recall) and after.overall == before.overall:
        out.append(
            "offsets change nothing on validation: none found there that improves the "
            "objective without going below the accuracy asked for"
        )
    return out


class ClassOffsets:
    """Offsets b (K,) so that ``argmax(logits + b)`` does best on ``objective`` over the
    data ``fit`` sees: "worst" (the lowest class recall) or "hard" (the mean recall of
    ``hard_classes``; default: the bottom floor(K / 3) of the un-offset recalls on the fit data,
    the report passes its own ranking), traded against overall accuracy by ``tradeoff``
    in [0, 1] (1: the objective alone; "hard" defaults to 0.5, since the hard third alone is
    best served by predicting nothing else), or, with ``min_overall``, the best objective
    among offsets whose overall accuracy reaches it. Fit on validation data only.

    Example:
        >>> import torch
        >>> z = torch.tensor([[2.0, 1.5], [2.0, 1.0], [0.0, 1.0], [2.0, 1.8]])
        >>> y = torch.tensor([0, 0, 1, 1])
        >>> fitted = ClassOffsets("worst").fit(z, y)
        >>> bool(fitted.after.worst > fitted.before.worst)
        True
    """

    def __init__(
        self,
        objective: str = "worst",
        *,
        tradeoff: float | None = None,
        min_overall: float | None = None,
        hard_classes: list[int] | None = None,
        tail_fraction: float = 0.1,
        steps: int = 20,
    ) -> None:
        _checks.check_choice(objective, "objective", OBJECTIVES)
        tradeoff = (0.5 if objective == "hard" else 1.0) if tradeoff is None else tradeoff
        if not 0.0 <= float(tradeoff) <= 1.0:
            raise ValueError(f"tradeoff must lie in [0, 1], got {tradeoff}")
        if min_overall is not None and not 0.0 <= float(min_overall) <= 1.0:
            raise ValueError(f"min_overall is an accuracy in [0, 1], got {min_overall}")
        if not 0.0 < float(tail_fraction) <= 1.0:
            raise ValueError(f"tail_fraction must lie in (0, 1], got {tail_fraction}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.objective, self.tradeoff, self.min_overall = objective, float(tradeoff), min_overall
        self.hard_classes, self.steps = hard_classes, int(steps)
        self.tail_fraction = float(tail_fraction)
        self.fitted_hard: list[int] | None = None  # the hard classes the last fit used
        self.warnings: list[str] = []  # what the last fit found worth saying (fit_warnings)
        self.offsets: Tensor | None = None
        self.before: Scores | None = None
        self.after: Scores | None = None

    def fit(self, logits: Any, labels: Any, *, warm: Tensor | None = None) -> ClassOffsets:
        """Fit on validation ``logits`` (N, K) and ``labels`` (N,); every class must occur.
        ``warm``: climb from these offsets alone (e.g. a fit at a higher ``min_overall``,
        feasible here too): faster, and the result is never worse than them."""
        z, y = _as_tensor(logits, "logits"), _as_tensor(labels, "labels")
        if len(z) != len(y):
            raise ValueError(f"{len(z)} logits but {len(y)} labels")
        k = z.shape[1]
        if len(y) and int(y.max()) >= k:
            raise ValueError(f"labels must lie in [0, {k}), found {int(y.max())}")
        absent = [c for c in range(k) if not bool((y == c).any())]
        if absent:
            raise ValueError(
                f"classes {absent} have no samples in the fit data: their offsets cannot be "
                "fit (carve a validation split that holds every class)"
            )
        hard = self.hard_mask_for(z, y)
        self.fitted_hard = hard.nonzero().flatten().tolist()
        b, self.before, self.after = fit_offsets(
            z, y, self.goal(hard), starts=self.steps, warm=warm
        )
        self.offsets = b.float()
        self.warnings = fit_warnings(self.before, self.after)
        for text in self.warnings:
            warnings.warn(text, stacklevel=2)
        return self

    def goal(self, hard: Tensor) -> Goal:
        """What the fit optimises (``mr2.posthoc.ascent.Goal``)."""
        floor = -math.inf if self.min_overall is None else float(self.min_overall)
        return Goal(
            self.objective,
            1.0 if self.min_overall is not None else self.tradeoff,
            hard.numpy(),
            tail_size(len(hard), self.tail_fraction),
            floor,
        )

    def hard_mask_for(self, z: Tensor, y: Tensor) -> Tensor:
        """(K,) bool: ``hard_classes``, or the bottom floor(K / 3) of the un-offset recalls of
        ``z`` against ``y`` when none are given."""
        k = z.shape[1]
        if self.hard_classes is None:
            recall = scores(z, y, torch.zeros(k), torch.ones(k, dtype=torch.bool)).recall
            mask = torch.zeros(k, dtype=torch.bool)
            mask[ranked_groups(recall.numpy())["hard"]] = True  # as the reports rank them
            return mask
        if not self.hard_classes or any(not 0 <= c < k for c in self.hard_classes):
            raise ValueError(f"hard_classes must be classes in [0, {k}), got {self.hard_classes}")
        return self.hard_mask(k)

    def hard_mask(self, num_classes: int) -> Tensor:
        """(K,) bool of the hard classes (after ``fit``: those it used)."""
        mask = torch.zeros(num_classes, dtype=torch.bool)
        used = self.fitted_hard if self.fitted_hard is not None else self.hard_classes
        mask[list(used or [])] = True
        return mask

    def _fitted(self) -> Tensor:
        if self.offsets is None:
            raise RuntimeError("ClassOffsets are not fit yet: call fit(val_logits, val_labels)")
        return self.offsets

    def apply(self, logits: Tensor) -> Tensor:
        """``logits + offsets`` (any leading shape, K last)."""
        b = self._fitted()
        if logits.shape[-1] != len(b):
            raise ValueError(
                f"offsets for K = {len(b)} applied to logits of K = {logits.shape[-1]}"
            )
        return logits + b.to(logits.device, logits.dtype)

    def wrap(self, model: nn.Module, *, features: bool | None = None) -> OffsetModel:
        """A module returning ``model``'s logits plus the offsets (TorchScript-able).
        ``features``: the model returns (logits, features), as mr2's models do (default:
        when it has ``feature_dim``)."""
        tuple_out = hasattr(model, "feature_dim") if features is None else features
        return OffsetModel(model, self._fitted(), tuple_out)

    def to_dict(self) -> dict[str, Any]:
        b = self._fitted()
        body = {
            "schema": SCHEMA,
            "objective": self.objective,
            "tradeoff": self.tradeoff,
            "min_overall": self.min_overall,
            "hard_classes": self.hard_classes,
            "steps": self.steps,
            "offsets": [float(v) for v in b],
        }
        return {**body, "sha256": _digest(body)}

    def save(self, path: str | Path) -> Path:
        save_json(self.to_dict(), Path(path))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ClassOffsets:
        """Offsets ``save`` wrote (JSON: nothing is unpickled), checksum checked."""
        data = load_json(Path(path))
        stored = data.pop("sha256", None) if isinstance(data, dict) else None
        if stored is None or stored != _digest(data) or data.get("schema") != SCHEMA:
            raise CorruptFileError(f"{path}: not offsets mr2 saved, or changed since")
        out = cls(
            data["objective"], tradeoff=data["tradeoff"], min_overall=data["min_overall"],
            hard_classes=data["hard_classes"], steps=data["steps"],
        )  # fmt: skip
        out.offsets = torch.tensor(data["offsets"], dtype=torch.float32)
        return out


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
