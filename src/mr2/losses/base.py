"""The calling convention every loss in mr2 follows.

``loss_fn(logits, features, targets, sample_weight=None)``: logits (B, K), features (B, D)
(ignored by losses that do not use them; may then be None), integer targets (B,) or, for
losses with ``soft_targets = True``, probabilities (B, K) (mixup / cutmix / label
smoothing, as timm and torchvision make them), optional non-negative per-sample weights
(B,). A subclass only implements ``per_sample`` (B,); the
base validates inputs, computes in float32 under autocast and applies the reduction:
"mean" is the weighted mean sum(w l) / sum(w) (plain mean without weights), "sum" is
sum(w l), "none" returns w * l.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from mr2 import _checks
from mr2.functional import as_fp32, full_precision


class ClassLoss(nn.Module):
    """Base class: hyperparameters and state live in subclasses; see the module docstring."""

    uses_features: bool = False
    soft_targets: bool = False  # accepts (B, K) probabilities as targets

    def __init__(
        self,
        num_classes: int,
        *,
        reduction: str = "mean",
        validate: bool = True,
        ignore_index: int | None = None,
    ):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index {ignore_index} is a class index (0 .. {num_classes - 1})"
            )
        self.num_classes = num_classes
        self.reduction = _checks.check_reduction(reduction)
        self.validate = bool(validate)
        self.ignore_index = ignore_index

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        raise NotImplementedError

    # -- what the training engine asks of a loss (the defaults: nothing) -------------------

    def internals(self) -> dict[str, list[float]]:
        """Per-class state recorded in each epoch's history: name -> K numbers (a list or
        a tensor). MR²'s ``margins`` / ``spreads``, group DRO's ``q`` and CDB's
        ``class_weights`` are ``EpochRecord`` fields (the report draws them); any other
        name is kept in ``EpochRecord.series`` (``internals_of`` checks the shape)."""
        return {}

    def on_validation(self, per_class_accuracy: Tensor) -> None:
        """Called with the per-class validation accuracy (K,) after each epoch's
        validation (never with test data); CDB refreshes its weights from it."""

    def feature_gradient_ratio(
        self, forward: Callable[[], tuple[Tensor, Tensor]], targets: Tensor
    ) -> float | None:
        """||gradient the features get from the loss's feature term|| / ||from its logit
        term|| on the batch ``forward()`` computes (logits, features), changing no state;
        None for a loss without such a pair of terms (and for frozen features)."""
        return None

    def _features(self, features: Tensor | None) -> Tensor:
        """``features`` of a loss that uses them (``forward`` has checked they were given)."""
        if features is None:
            raise ValueError(f"{type(self).__name__} needs features: loss(logits, features, y)")
        return features

    def forward(
        self,
        logits: Tensor,
        features: Tensor | None,
        targets: Tensor | None = None,
        sample_weight: Tensor | None = None,
    ) -> Tensor:
        if targets is None:  # loss(logits, y), as torch's losses are called
            raise TypeError(
                f"{type(self).__name__} is called as loss(logits, features, targets) (features: "
                "the input of the classifier, or None for a loss that does not use them); it "
                "got two arguments, e.g. loss(logits, y): call loss(logits, None, y) or "
                "loss(logits, features, y)"
            )
        if self.ignore_index is not None and not _checks.is_soft(targets):
            return self._without_ignored(logits, features, targets, sample_weight)
        return self._forward(logits, features, targets, sample_weight)

    def _without_ignored(self, logits, features, targets, sample_weight) -> Tensor:
        """``ignore_index``: those samples leave the loss and any statistics, as in
        ``F.cross_entropy`` (the mean is over the kept samples; "none" gives them 0)."""
        _checks.check_targets_shape(targets, logits.shape[0])
        keep = targets != self.ignore_index
        if not bool(keep.any()):  # nothing to learn from: zero, with a graph
            zero = logits.sum() * 0.0
            return zero.expand(len(targets)).clone() if self.reduction == "none" else zero
        kept = self._forward(
            logits[keep],
            features[keep] if features is not None else None,
            targets[keep],
            sample_weight[keep] if sample_weight is not None else None,
        )
        if self.reduction != "none":
            return kept
        return kept.new_zeros(len(targets)).masked_scatter(keep, kept)

    def _forward(
        self,
        logits: Tensor,
        features: Tensor | None,
        targets: Tensor,
        sample_weight: Tensor | None = None,
    ) -> Tensor:
        _checks.check_matrix(logits, "logits", cols=self.num_classes)
        batch = logits.shape[0]
        values = {"logits": logits}
        if self.uses_features:
            if features is None:
                raise ValueError(f"{type(self).__name__} needs features (B, D), got None")
            _checks.check_matrix(features, "features")
            if _same_tensor(features, logits):
                raise ValueError(
                    f"{type(self).__name__} got the logits tensor as the features; pass the "
                    "input of the final linear layer (mr2.with_features(model) returns "
                    "(logits, features) for any classifier)"
                )
            if features.shape[0] != batch:
                raise ValueError(
                    f"batch sizes differ: logits have {batch}, features {features.shape[0]}"
                )
            values["features"] = features
        soft = _checks.is_soft(targets)
        if soft:
            self._check_soft(targets)
        else:
            _checks.check_targets_shape(targets, batch)
            targets = targets.long()  # int32 / uint8 labels as int64 (a no-op for int64)
        if sample_weight is not None:
            if sample_weight.shape != (batch,):
                raise ValueError(
                    f"sample_weight must have shape ({batch},), got {tuple(sample_weight.shape)}"
                )
            values["sample_weight"] = sample_weight
        if self.validate and soft:
            _checks.check_probabilities(targets, **values)
        elif self.validate:
            _checks.check_values(targets, self.num_classes, "targets", **values)
            if sample_weight is not None and bool((sample_weight < 0).any()):
                raise ValueError("sample_weight must be >= 0")
        with full_precision(logits):
            f = as_fp32(features) if self.uses_features and features is not None else features
            t = as_fp32(targets) if soft else targets
            return self._reduced(as_fp32(logits), f, t, sample_weight)

    def _check_soft(self, targets: Tensor) -> None:
        if not self.soft_targets:
            raise ValueError(
                f"{type(self).__name__} takes class indices (B,), not soft (B, K) targets; "
                "soft targets (mixup / cutmix / label smoothing) work with ce and the mr2 "
                "losses, or use mr2.losses.mixed_loss(loss_fn, logits, features, y_a, y_b, lam)"
            )
        if targets.shape[1] != self.num_classes:
            raise ValueError(
                f"soft targets have {targets.shape[1]} columns, expected num_classes = "
                f"{self.num_classes}"
            )

    def _reduced(
        self, logits: Tensor, features: Tensor | None, targets: Tensor, sample_weight
    ) -> Tensor:
        """The reduced loss of validated float32 inputs (a subclass may fuse the two)."""
        per_sample = self.per_sample(logits, features, targets)
        return weighted_reduce(per_sample, sample_weight, self.reduction)


def _same_tensor(a: Tensor, b: Tensor) -> bool:
    """``a`` and ``b`` are the same data (a misuse check; under ``torch.compile``, which
    cannot compare data pointers, only the same tensor object counts)."""
    if a is b:
        return True
    if torch.compiler.is_compiling():
        return False
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape


def weighted_reduce(values: Tensor, weight: Tensor | None, reduction: str) -> Tensor:
    """Reduce per-sample values (B,) with optional weights; see the module docstring."""
    if weight is None:
        return _checks.reduce(values, reduction)
    w = weight.to(values.dtype)
    if reduction == "mean":
        return (w * values).sum() / w.sum().clamp(min=torch.finfo(values.dtype).tiny)
    return _checks.reduce(w * values, reduction)


def internals_of(loss_fn: nn.Module, num_classes: int) -> dict[str, list[float]]:
    """``loss_fn.internals()`` checked (``{}`` for a loss that is no ``ClassLoss``): a
    mapping from names to one number per class, as floats; anything else raises
    ``ValueError`` naming the loss and the entry (called by ``--check`` on a built loss,
    so a plug-in's malformed series is found before anything trains)."""
    if not isinstance(loss_fn, ClassLoss):
        return {}
    got, owner = loss_fn.internals(), f"{type(loss_fn).__name__}.internals()"
    if not isinstance(got, Mapping):
        raise ValueError(f"{owner} must return a dict of per-class lists, got {type(got).__name__}")
    out = {}
    for key, values in got.items():
        try:
            series = [float(v) for v in values]
        except (TypeError, ValueError):
            series = []
        if not (isinstance(key, str) and key.isidentifier() and len(series) == num_classes):
            raise ValueError(
                f"{owner}[{key!r}] must be named by an identifier and hold {num_classes} numbers "
                f"(one per class), got {str(values)[:80]}"
            )
        out[key] = series
    return out
