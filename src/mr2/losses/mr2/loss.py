"""``MR2Loss``: the drop-in MR² loss module (hyperparameters + running class statistics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mr2 import _checks, distributed, representation
from mr2.losses.mr2 import class_stats as stats
from mr2.losses.mr2 import gradients, options, presets, soft
from mr2.losses.mr2.state import MR2Statistics
from mr2.losses.mr2.terms import MarginTerms
from mr2.losses.registry import register
from mr2.representation import PAIRS_PER_GRAM_ENTRY, representation_margin


@register("mr2", "MR²: logit margins from class statistics + representation margin")
class MR2Loss(MR2Statistics):
    """Margin Regularization for class-wise performance disparity Reduction.

    ``loss = reduce(l_gamma + lambda_rep * l_s)`` with per-class logit margins gamma_k from
    running feature statistics and the representation margin term (see ``mr2.functional``).

    The running class statistics (buffers, in checkpoints; read as ``weight``,
    ``class_mean``, ``sq_dev``, ``margins()``, ``s_bar()``) are described in
    ``mr2.losses.mr2.state.MR2Statistics``; in ``eval()`` mode the loss uses the current
    margins and changes nothing. One training step with ``validate=False`` reads nothing back
    to the host and keeps its shapes (CUDA graphs, one compiled graph).

    Args:
        num_classes: K.
        lambda_rep: weight of the representation margin term (0 turns it off). The
            default, 0.03 with ``rep_temperature="auto"``, is a safe setting, not the paper's:
            the paper's formula read literally (raw squared distances, lambda 0.1) is the
            ``"paper"`` preset, and the studies in ``benchmarks/`` found it harmful (its
            gradient outgrows cross-entropy's as training goes on). **Safe range with the
            scale-free term: 0.01-0.03.** Its gradient is 1 / feature scale, so it grows as
            features shrink: 0.3 drove the converged MLP and CNN studies to chance (every
            ReLU dead), 0.1 (the paper's value) is at the edge. The engine records the
            representation / logit gradient ratio per epoch and warns, like ``mr2 report``,
            about a run that ends near chance or whose representation term dominates.
        c_bar: mean margin over seen classes.
        ema_decay: weight the running statistics keep at each update, in [0, 1).
        norm_p: p of the norm used for the margin statistics (2 in the paper's formula).
        rep_temperature: divides the exponent of the representation term (1 = the paper's
            raw form), or "auto" (default): the running, detached mean same-class pair
            distance 2 s_bar, which makes
            the term scale-free (the same value of every feature scaled by a constant, so one
            lambda_rep means the same for an MLP, a CNN or a CLIP backbone); 1 while s_bar
            is still 0.
        margin_statistic: what a_k in gamma_k ∝ a_k^(1/3) is: "paper" (||mu_k||_p^2 +
            ||s_k||^2), "centered" (the same with mu_k centred by the running mean of all
            classes: invariant to a shift of the features, which a linear head's bias
            absorbs) or "spread" (||s_k||^2 alone). With ReLU features ||mu_k||^2 dominates
            "paper", so the hardest (most spread) classes can get the smallest margins.
        margin_direction: "increasing" (the paper: gamma_k ∝ a_k^(1/3)) or "decreasing"
            (gamma_k ∝ a_k^(-1/3), the loss "mr2_reversed": the larger margins go to the
            classes of smaller statistic, with "paper" the ones the diagnostics find hard).
        rep_reduction: "sample" (paper: every sample's term counts once) or "class" (the
            authors' ImageNet code: the sum over classes of each class's mean term, i.e.
            sample i weighted by B / n_{y_i} with n the class's count in the local batch).
        reduction: "mean" | "sum" | "none" (weighted by ``sample_weight`` if given).
        logit_margins: False fixes every margin at 1 (the representation-only ablation).
        gather_features: under torch.distributed, compare each sample with same-class
            samples on every rank (features gathered with gradients).
        validate: check label range and finiteness (one fused host sync per call). Set
            False for a sync-free forward on accelerators and for ``torch.compile`` to trace
            the loss as one graph; shapes are always checked. (On the CPU with K >= 50 and
            batches of 256 or more the representation term runs from its list of
            same-class pairs either way, ``mr2.representation``.)
        process_group: the torch.distributed group to reduce over (default: world).
        ignore_index: a target value whose samples are left out of the loss and of the
            statistics (as ``F.cross_entropy``'s; class-index targets only).
        label_smoothing: eps in [0, 1): the targets become ``(1 - eps) t + eps / K``, as
            ``F.cross_entropy``'s (each class's term keeps its own margin; the statistics
            and the representation term ignore the uniform part).

    Soft targets (mixup / cutmix from timm or torchvision, with or without label smoothing,
    per batch or per sample): pass the (B, K) probabilities as ``targets``. The loss is its
    expectation over the target distribution (``mr2.losses.mr2.soft``), so a mixed row gives
    ``lam * l(y_a) + (1 - lam) * l(y_b)``, and a mixed sample counts ``lam`` towards its
    first class's statistics. ``mr2.losses.mixed_loss`` takes the two label vectors instead.

    Example:
        >>> torch.manual_seed(0) and None
        >>> loss_fn = MR2Loss(num_classes=3)
        >>> feats = torch.randn(8, 4, requires_grad=True)
        >>> logits = feats @ torch.randn(4, 3)
        >>> loss = loss_fn(logits, feats, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
        >>> loss.backward()
        >>> round(float(loss_fn.margins().mean()), 6)  # the mean margin is c_bar
        1.0
    """

    def __init__(
        self,
        num_classes: int,
        *,
        lambda_rep: float = 0.03,
        c_bar: float = 1.0,
        ema_decay: float = 0.99,
        norm_p: float = 2.0,
        rep_temperature: float | str = "auto",
        margin_statistic: str = "paper",
        margin_direction: str = "increasing",
        rep_reduction: str = "sample",
        reduction: str = "mean",
        logit_margins: bool = True,
        gather_features: bool = False,
        validate: bool = True,
        process_group: Any = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            num_classes, reduction=reduction, validate=validate, ignore_index=ignore_index
        )
        errors = options.problems(
            dict(ema_decay=ema_decay, norm_p=norm_p, lambda_rep=lambda_rep, c_bar=c_bar,
                 rep_temperature=rep_temperature, margin_statistic=margin_statistic,
                 margin_direction=margin_direction,
                 label_smoothing=label_smoothing, rep_reduction=rep_reduction)
        )  # fmt: skip
        if errors:
            raise ValueError("; ".join(errors))
        self.lambda_rep, self.c_bar = float(lambda_rep), float(c_bar)
        self.ema_decay, self.norm_p = float(ema_decay), float(norm_p)
        self.rep_temperature = (
            rep_temperature if rep_temperature == "auto" else float(rep_temperature)
        )
        self.margin_statistic, self.margin_direction = margin_statistic, margin_direction
        self.rep_reduction, self.label_smoothing = rep_reduction, float(label_smoothing)
        self.logit_margins = bool(logit_margins)
        self.gather_features = bool(gather_features)
        self.process_group = process_group
        self._register_statistics()

    PRESETS = presets.PRESETS
    option_problems = staticmethod(options.problems)  # the registry's check

    @classmethod
    def from_preset(
        cls, name: str, num_classes: int, *, feature_dim: int | None = None, **overrides: Any
    ) -> MR2Loss:
        """Named settings (``preset_options``); ``overrides`` replace any constructor
        argument."""
        return cls(
            num_classes, **{**cls.preset_options(name, num_classes, feature_dim), **overrides}
        )

    @staticmethod
    def preset_options(name: str, num_classes: int, feature_dim: int | None) -> dict[str, Any]:
        """The constructor arguments of a named setting (``presets.preset_options``)."""
        return presets.preset_options(name, num_classes, feature_dim)

    # -- loss ----------------------------------------------------------------------------

    uses_features = True
    soft_targets = True

    def internals(self) -> dict[str, list[float]]:
        """Margins (unless all are 1: the representation-only ablation) and spreads."""
        out = {"margins": self.margins().tolist()} if self.logit_margins else {}
        return {**out, "spreads": self.spreads().tolist()}

    def feature_gradient_ratio(
        self, forward: Callable[[], tuple[Tensor, Tensor]], targets: Tensor
    ) -> float | None:
        """The representation term's gradient on the features over the logit term's
        (``gradients``), statistics untouched, this process's batch alone."""
        if self.lambda_rep == 0:
            return None
        gather, self.gather_features = self.gather_features, False  # no collective here
        try:
            with torch.enable_grad(), self.statistics_frozen():
                logits, features = forward()
                if not features.requires_grad:  # frozen features: the term is constant
                    return None
                margins = self.margins() if self.logit_margins else None
                f, z = features.float(), logits.float()
                return gradients.term_ratio(self.per_sample, margins, z, f, targets)
        finally:
            self.gather_features = gather

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        """l_gamma + lambda_rep * l_s per sample (B,); inputs already validated, float32."""
        return self._loss(logits, self._features(features), targets, "none")

    def _reduced(self, logits, features, targets, sample_weight) -> Tensor:
        if sample_weight is not None or features is None:
            return super()._reduced(logits, features, targets, sample_weight)
        return self._loss(logits, features, targets, self.reduction)

    def _loss(self, z: Tensor, f: Tensor, y: Tensor, reduction: str) -> Tensor:
        self._warn_if_no_grad()
        if y.dim() == 2 or self.label_smoothing:
            t = soft.smoothed(y, self.num_classes, self.label_smoothing)
            return self._soft_loss(z, f, t, reduction)
        column = y.unsqueeze(1)
        fused = self.lambda_rep > 0 and not self._separate_representation(f)
        with torch.no_grad():
            gram = f.mm(f.t()) if fused else None
            inv_margin, shift, scale = self._statistics(z, f, y, column)
        rep_w = None
        if self.lambda_rep > 0 and self.rep_reduction == "class":
            ones = f.new_ones(len(y))  # the batch's class counts without a sync (not bincount)
            rep_w = len(y) / f.new_zeros(self.num_classes).index_add_(0, y, ones)[y]
        args = (gram, column != y if fused else None, shift, scale)
        if not fused and self.lambda_rep > 0:
            return self._with_separate_representation(
                z, f, y, column, inv_margin, (*args, rep_w), reduction
            )
        lam = self.lambda_rep if fused else 0.0
        loss = MarginTerms.apply(z, f, column, inv_margin, *args, lam, rep_w, reduction)
        return self._checked(
            loss, lambda: MarginTerms.apply(z, f, column, inv_margin, *args, 0.0, None, "none")
        )

    def _soft_loss(self, z: Tensor, f: Tensor, t: Tensor, reduction: str) -> Tensor:
        """The loss of soft targets ``t`` (B, K): its expectation over them (``soft``)."""
        if self.gather_features and distributed.is_distributed(self.process_group):
            raise ValueError(
                "MR2Loss: gather_features is not supported with soft (B, K) targets; pass "
                "class indices, or gather_features=False to compare samples within a process"
            )
        w = soft.class_evidence(t)
        with torch.no_grad():
            if self.training and not self.frozen:
                self._update(f.detach(), w)
        if self.logit_margins:
            inv = self.inverse_margins().to(z.dtype)
            ce = soft.ExpectedMarginCE.apply(z, t, inv)
        else:
            ce = -(t * z.log_softmax(1)).sum(1)
        per = ce
        if self.lambda_rep > 0:
            a = stats.mean_sq_norm(self.sums)
            s_bar, scale = self._rep_scale(a, stats.seen_count(self.sums), f.dtype)
            outer = soft.per_class_weights(w) if self.rep_reduction == "class" else w
            rep = soft.representation(f, w, s_bar, scale, outer)
            per = per + self.lambda_rep * rep
        return self._checked(_checks.reduce(per, reduction), lambda: ce)

    def _checked(self, loss: Tensor, margin_ce: Callable[[], Tensor]) -> Tensor:
        """``validate=True``: a non-finite loss of finite inputs is an error naming its
        cause: the logits over their margins (``margin_ce()``, computed only then) or
        lambda_rep times the representation term."""
        if not self.validate or bool(torch.isfinite(loss).all()):
            return loss
        if not bool(torch.isfinite(margin_ce()).all()):
            raise ValueError(
                f"MR²'s loss is NaN or Inf: the logits divided by their margins overflow "
                f"float32 (c_bar = {self.c_bar:g} sets the mean margin; raise it)"
            )
        raise ValueError(
            f"MR²'s loss overflowed: lambda_rep ({self.lambda_rep:g}) times the "
            "representation term is not finite in float32; lower lambda_rep "
            "(0.01-0.1 are the values in use)"
        )

    def _separate_representation(self, f: Tensor) -> bool:
        """The representation term runs outside the fused terms: against features gathered
        from every process, or from its list of same-class pairs. The list: on the CPU,
        with enough classes that balanced batches hold few same-class pairs (about
        B^2 / 2K) and from ``representation.LIST_FROM_BATCH`` samples; it reads their
        number, free on the CPU, but a graph break: not while ``torch.compile`` traces."""
        if self.gather_features and distributed.is_distributed(self.process_group):
            return True
        return (
            f.device.type == "cpu"
            and len(f) >= representation.LIST_FROM_BATCH
            and 2 * self.num_classes >= PAIRS_PER_GRAM_ENTRY
            and not torch.compiler.is_compiling()
        )

    def _with_separate_representation(self, z, f, y, column, inv_margin, args, reduction):
        _gram, _other, s_bar, scale, rep_w = args
        partners = None
        if self.gather_features and distributed.is_distributed(self.process_group):
            all_f, offset = distributed.all_gather_with_grad(f, self.process_group)
            all_y, _ = distributed.all_gather_with_grad(y, self.process_group)
            partners = (all_f, all_y, offset)
        root = scale.sqrt()  # (d - shift) / scale as the paper's form on f / sqrt(scale)
        if partners is not None:
            partners = (partners[0] / root, partners[1], partners[2])
        rep = representation_margin(f / root, y, s_bar / scale, 1.0, partners, True)
        ce = MarginTerms.apply(z, f, column, inv_margin, *args[:4], 0.0, None, "none")
        per = ce + self.lambda_rep * (rep if rep_w is None else rep * rep_w)
        return self._checked(_checks.reduce(per, reduction), lambda: ce)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in REPR)


REPR = "num_classes lambda_rep c_bar ema_decay norm_p rep_temperature rep_reduction".split()
REPR += "margin_statistic margin_direction label_smoothing reduction".split()
