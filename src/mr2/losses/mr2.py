"""``MR2Loss``: the drop-in MR² loss module (hyperparameters + running class statistics)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor

from mr2 import _checks, distributed
from mr2 import functional as MF
from mr2.losses.base import ClassLoss
from mr2.losses.registry import register
from mr2.representation import PAIRS_PER_GRAM_ENTRY, representation_margin

_PRESETS = ("paper", "official", "authors_clip")


@register("mr2", "MR²: logit margins from class statistics + representation margin")
class MR2Loss(ClassLoss):
    """Margin Regularization for class-wise performance disparity Reduction.

    ``loss = reduce(l_gamma + lambda_rep * l_s)`` with per-class logit margins gamma_k from
    running feature statistics and the representation margin term (see ``mr2.functional``).

    Running statistics (registered buffers, so they follow ``.to()``, ``state_dict()`` and
    checkpoints): ``weight`` (K,) effective sample count per class, ``class_mean`` (K, D)
    and ``sq_dev`` (K, 2) mean squared deviation in the p-norm (margins) and in the 2-norm
    (``s_bar``). They are updated from each training batch by a count-weighted EMA
    (``functional.ema_merge``), after summing the batch's per-class sufficient statistics
    over all processes, so every rank holds the margins of the global batch. In ``eval()``
    mode the loss uses the current margins and changes nothing. Statistics carry no
    gradient: margins and ``s_bar`` act as constants.

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
        rep_reduction: "sample" (paper: every sample's term counts once) or "class" (the
            authors' ImageNet code: the sum over classes of each class's mean term, i.e.
            sample i weighted by B / n_{y_i} with n the class's count in the local batch).
        reduction: "mean" | "sum" | "none" (weighted by ``sample_weight`` if given).
        logit_margins: False fixes every margin at 1 (the representation-only ablation).
        gather_features: under torch.distributed, compare each sample with same-class
            samples on every rank (features gathered with gradients).
        validate: check label range and finiteness (one fused host sync per call; on the
            CPU with K >= 50 it also lets the representation term run from its list of
            same-class pairs, ``mr2.representation``). Set False for a sync-free forward on
            accelerators and for ``torch.compile`` to trace the loss as one graph; shapes
            are always checked.
        process_group: the torch.distributed group to reduce over (default: world).
        ignore_index: a target value whose samples are left out of the loss and of the
            statistics (as ``F.cross_entropy``'s).

    Mixed targets (mixup / cutmix): ``mr2.losses.mixed_loss(loss_fn, logits, features, y_a,
    y_b, lam)`` computes ``lam * l(y_a) + (1 - lam) * l(y_b)``; soft (B, K) targets are
    refused (the class statistics need one label per sample).

    Example:
        >>> torch.manual_seed(0) and None
        >>> loss_fn = MR2Loss(num_classes=3)
        >>> feats = torch.randn(8, 4, requires_grad=True)
        >>> logits = feats @ torch.randn(4, 3)
        >>> loss = loss_fn(logits, feats, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
        >>> loss.backward()
        >>> loss_fn.margins().mean()
        tensor(1.)
    """

    weight: Tensor
    class_mean: Tensor
    sq_dev: Tensor

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
        rep_reduction: str = "sample",
        reduction: str = "mean",
        logit_margins: bool = True,
        gather_features: bool = False,
        validate: bool = True,
        process_group: Any = None,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(
            num_classes, reduction=reduction, validate=validate, ignore_index=ignore_index
        )
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
        if not norm_p >= 1.0 or norm_p == float("inf"):
            raise ValueError(f"norm_p must be a finite p >= 1, got {norm_p}")
        self.lambda_rep = _checks.check_positive(lambda_rep, "lambda_rep", allow_zero=True)
        self.c_bar = _checks.check_positive(c_bar, "c_bar")
        self.ema_decay = float(ema_decay)
        self.norm_p = float(norm_p)
        if rep_temperature != "auto":
            if isinstance(rep_temperature, str):
                raise ValueError(f"rep_temperature must be > 0 or 'auto', got {rep_temperature!r}")
            rep_temperature = _checks.check_positive(rep_temperature, "rep_temperature")
        self.rep_temperature = rep_temperature
        if margin_statistic not in ("paper", "centered", "spread"):
            raise ValueError(
                "margin_statistic must be 'paper', 'centered' or 'spread', "
                f"got {margin_statistic!r}"
            )
        self.margin_statistic = margin_statistic
        if rep_reduction not in ("sample", "class"):
            raise ValueError(f"rep_reduction must be 'sample' or 'class', got {rep_reduction!r}")
        self.rep_reduction = rep_reduction
        self.logit_margins = bool(logit_margins)
        self.gather_features = bool(gather_features)
        self.process_group = process_group
        self.register_buffer("weight", torch.zeros(num_classes))
        self.register_buffer("class_mean", torch.zeros(num_classes, 0))  # sized on first use
        self.register_buffer("sq_dev", torch.zeros(num_classes, 2))

    PRESETS = _PRESETS
    STATISTICS = ("weight", "class_mean", "sq_dev")

    def _apply(self, fn, recurse=True):
        """``.half()`` / ``.to(torch.bfloat16)`` move the statistics but keep them in float32
        (or float64): float16 running sums of squared norms overflow, and the inputs are
        computed in float32 anyway."""
        out = super()._apply(fn, recurse)
        for name in self.STATISTICS:
            buf = getattr(self, name)
            if buf.dtype in (torch.float16, torch.bfloat16):
                setattr(self, name, buf.float())
        return out

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
        """The constructor arguments of a named setting.

        - ``"paper"``: the paper's formula: 2-norm statistics, temperature 1, lambda 0.1.
        - ``"official"``: the authors' ImageNet / CLIP code (needs ``feature_dim`` = D):
          5-norm margin statistics, exponent divided by 10 * D (``rep_temperature``), the
          representation term summed over classes of per-class means
          (``rep_reduction="class"``) and scaled by D / 10 / K (folded into ``lambda_rep =
          0.1 * D / (10 K)``), EMA decay 0.999. Their EMA keeps ||batch mean||_p^2 and the
          batch deviation per class; ours keeps the mean vector and pools deviations around
          it (``functional.ema_merge``): for p = 2 both estimate E ||f||^2 of the class, and
          ours is not biased low when a class has one sample per batch. Differences from
          their code, all bug fixes: K is the
          real number of classes (not 1000) and unseen classes neither enter the margin
          normaliser nor change the mean margin; ``s_bar`` is a 2-norm quantity like the
          distances it is compared with (theirs subtracts a 5-norm s_bar); statistics live
          in one persistent module (not rebuilt each epoch), update only in training mode
          (never on evaluation batches), are summed across processes, checkpointed, pooled
          count-weighted and computed without a per-class Python loop.
        - ``"authors_clip"``: ``"official"`` plus the mean margin the authors' CLIP runs
          effectively had: their code normalises the margins over a hard-wired 1000
          classes, so with K < 1000 seen classes the mean margin is 1000 / K (about 27 on
          Pets), i.e. ``c_bar = 1000 / K``. (Their CLIP code also fed the loss unnormalised
          image features: set the backbone's ``normalize = false`` for that; mr2's recipes
          feed normalised ones.)
        """
        if name == "paper":
            kwargs: dict[str, Any] = {"lambda_rep": 0.1, "norm_p": 2.0, "rep_temperature": 1.0}
        elif name == "official":
            if feature_dim is None or feature_dim < 1:
                raise ValueError("the 'official' preset needs feature_dim (the feature width D)")
            kwargs = {
                "norm_p": 5.0,
                "rep_temperature": 10.0 * feature_dim,
                "lambda_rep": 0.1 * feature_dim / 10.0 / num_classes,
                "rep_reduction": "class",
                "ema_decay": 0.999,
            }
        elif name == "authors_clip":
            kwargs = {
                **MR2Loss.preset_options("official", num_classes, feature_dim),
                "c_bar": 1000.0 / num_classes,
            }
        else:
            raise ValueError(f"unknown preset {name!r}; available: {', '.join(_PRESETS)}")
        return kwargs

    # -- state ---------------------------------------------------------------------------

    def seen(self) -> Tensor:
        """(K,) bool: classes observed at least once in training."""
        return self.weight > 0

    def margins(self) -> Tensor:
        """Current per-class margins gamma (K,); c_bar for unseen classes."""
        return self._margins(None)

    def _margins(self, mean_sq_norm: Tensor | None) -> Tensor:
        """``margins()``; ``mean_sq_norm``: ||class_mean||_p^2 if already computed."""
        if self.margin_statistic == "spread" or self.class_mean.shape[1] == 0:
            norm_sq = torch.zeros_like(self.sq_dev[:, 0])
        elif self.margin_statistic == "centered":
            w = self.weight.unsqueeze(1)
            center = (w * self.class_mean).sum(0) / w.sum().clamp(min=1e-12)
            norm_sq = MF.sq_pnorm(self.class_mean - center, self.norm_p)
        elif mean_sq_norm is not None:
            norm_sq = mean_sq_norm
        else:
            norm_sq = MF.sq_pnorm(self.class_mean, self.norm_p)
        return MF.class_margins(norm_sq, self.sq_dev[:, 0], self.seen(), self.c_bar)

    def s_bar(self) -> Tensor:
        """Mean over seen classes of the 2-norm mean squared deviation (0-dim tensor)."""
        seen = self.seen()
        return (self.sq_dev[:, 1] * seen).sum() / seen.sum().clamp(min=1)

    def spreads(self) -> Tensor:
        """Per-class mean squared deviation ||s_k||^2 in the 2-norm (K,)."""
        return self.sq_dev[:, 1].clone()

    def reset_statistics(self) -> None:
        self.weight.zero_()
        self.class_mean = self.class_mean.new_zeros(self.num_classes, 0)
        self.sq_dev.zero_()

    @torch.no_grad()
    def update_statistics(self, features: Tensor, targets: Tensor) -> Tensor | None:
        """Fold one batch into the running statistics (summed over processes first).

        Returns ||class_mean||_p^2 (K,) of the statistics now held when it was computed on
        the way (``validate=True``), else None; the margins reuse it."""
        f = MF.as_fp32(features.detach())
        if self.class_mean.shape[1] == 0:
            self.class_mean = f.new_zeros(self.num_classes, f.shape[1])
        elif self.class_mean.shape[1] != f.shape[1]:
            raise ValueError(
                f"features have {f.shape[1]} columns but the statistics were built with "
                f"{self.class_mean.shape[1]}"
            )
        group = self.process_group
        # Pass 1: counts and sums -> the global batch's class means.
        packed = distributed.all_reduce_sum(
            MF.class_sums_packed(f, targets, self.num_classes), group
        )
        count = packed[:, 0]
        means = packed[:, 1:].div_(count.clamp(min=1).unsqueeze(1))  # (K, D), in place
        # Pass 2: squared deviations from the *global* means (exact for any p).
        norms = (self.norm_p, 2.0)
        dev = distributed.all_reduce_sum(MF.class_deviation_sums(f, targets, means, norms), group)
        sq_dev = dev / count.clamp(min=1).unsqueeze(1)
        weight, mean, running = MF.ema_merge(
            self.weight, self.class_mean, self.sq_dev, count, means, sq_dev, self.ema_decay, norms
        )
        return self._commit(weight, mean, running)

    def _commit(self, weight: Tensor, mean: Tensor, running: Tensor) -> Tensor | None:
        """Keep the new statistics only if they and the margins they give are finite: a
        batch that would overflow them (huge features, float16 norms) is refused with a
        ``ValueError`` (``validate=True``) or skipped without a host sync (``validate=False``);
        either way the running state is untouched. Returns ||mean||_p^2 when the batch was
        committed for sure (validate=True), else None."""
        mean_sq_norm = MF.sq_pnorm(mean, self.norm_p)
        a = mean_sq_norm + running[:, 0]  # NaN / Inf wherever mean is
        # one test of two float64 sums: NaN / Inf anywhere shows (a float32 sum could
        # overflow on finite values; float64 statistics would need entries near 1e300)
        ok = torch.isfinite(a.sum(dtype=torch.float64) + running.sum(dtype=torch.float64))
        if self.validate:
            if not bool(ok):
                raise ValueError(
                    "MR2Loss: this batch's features would make the running class statistics "
                    "non-finite (squared feature norms overflow float32); the statistics are "
                    "unchanged. Check the features for exploding values (lower the learning "
                    "rate or a loss weight such as lambda_rep, clip gradients) or rescale them."
                )
            self.weight.copy_(weight)
            self.class_mean.copy_(mean)
            self.sq_dev.copy_(running)
            return mean_sq_norm
        self.weight.copy_(torch.where(ok, weight, self.weight))
        self.class_mean.copy_(torch.where(ok, mean, self.class_mean))
        self.sq_dev.copy_(torch.where(ok, running, self.sq_dev))
        return None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        incoming = state_dict.get(prefix + "class_mean")
        if incoming is not None and incoming.shape != self.class_mean.shape:
            if incoming.shape[0] != self.num_classes:
                raise ValueError(
                    f"checkpoint has statistics for {incoming.shape[0]} classes, "
                    f"this loss has num_classes = {self.num_classes}"
                )
            self.class_mean = self.class_mean.new_zeros(incoming.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- loss ----------------------------------------------------------------------------

    uses_features = True

    frozen = False  # set by ``statistics_frozen()``: training without updating statistics

    @contextlib.contextmanager
    def statistics_frozen(self):
        """Compute the loss in training mode without updating the running statistics."""
        self.frozen, before = True, self.frozen
        try:
            yield self
        finally:
            self.frozen = before

    def per_sample(self, logits: Tensor, features: Tensor | None, targets: Tensor) -> Tensor:
        """l_gamma + lambda_rep * l_s per sample (B,); inputs already validated, float32."""
        features = self._features(features)
        mean_sq_norm = None
        if self.training and not self.frozen:
            mean_sq_norm = self.update_statistics(features, targets)
        if self.logit_margins:
            margins = self._margins(mean_sq_norm)
            per_sample = MF._logit_margin_ce(logits, targets, margins)
        else:
            per_sample = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        if self.lambda_rep > 0:
            partners = None
            if self.gather_features and distributed.is_distributed(self.process_group):
                all_f, offset = distributed.all_gather_with_grad(features, self.process_group)
                all_y, _ = distributed.all_gather_with_grad(targets, self.process_group)
                partners = (all_f, all_y, offset)
            rep = self._representation(features, targets, partners)
            if self.rep_reduction == "class":
                count = rep.new_zeros(self.num_classes).index_add_(0, targets, torch.ones_like(rep))
                rep = rep * (rep.shape[0] / count[targets])
            per_sample = per_sample + self.lambda_rep * rep
            if self.validate and not bool(torch.isfinite(per_sample.sum(dtype=torch.float64))):
                raise ValueError(
                    f"MR²'s loss overflowed: lambda_rep ({self.lambda_rep:g}) times the "
                    "representation term is not finite in float32; lower lambda_rep "
                    "(0.01-0.1 are the values in use)"
                )
        return per_sample

    @property
    def _pair_list(self) -> bool:
        """Whether the representation term may use its pair-list form (a host read): with
        validation on (which reads anyway) and enough classes that balanced batches hold
        few same-class pairs (about B^2 / 2K)."""
        return self.validate and 2 * self.num_classes >= PAIRS_PER_GRAM_ENTRY

    def _representation(self, features: Tensor, targets: Tensor, partners) -> Tensor:
        s_bar = self.s_bar()
        if not isinstance(self.rep_temperature, str):  # a number; "auto" below
            return representation_margin(
                features, targets, s_bar, self.rep_temperature, partners, self._pair_list
            )
        # "auto": (d - 2 s) / (2 s) computed as the paper's form on features / sqrt(2 s),
        # without a host sync; the scale is a detached constant like s_bar itself
        scale = torch.where(s_bar > 0, 2.0 * s_bar, torch.ones_like(s_bar)).detach()
        root = scale.sqrt()
        if partners is not None:
            partners = (partners[0] / root, partners[1], partners[2])
        return representation_margin(
            features / root, targets, s_bar / scale, 1.0, partners, self._pair_list
        )

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, lambda_rep={self.lambda_rep}, c_bar={self.c_bar}, "
            f"ema_decay={self.ema_decay}, norm_p={self.norm_p}, "
            f"rep_temperature={self.rep_temperature!r}, rep_reduction={self.rep_reduction!r}, "
            f"margin_statistic={self.margin_statistic!r}, "
            f"reduction={self.reduction!r}"
        )


@register(
    "mr2_logit",
    "MR² ablation: logit margins only (lambda_rep = 0)",
    MR2Loss,
    fixed={"lambda_rep": 0.0},
)
def mr2_logit(num_classes: int, **kwargs: Any) -> MR2Loss:
    return MR2Loss(num_classes, **{**kwargs, "lambda_rep": 0.0})


@register(
    "mr2_rep",
    "MR² ablation: representation margin only (all margins 1)",
    MR2Loss,
    fixed={"logit_margins": False},
)
def mr2_rep(num_classes: int, **kwargs: Any) -> MR2Loss:
    return MR2Loss(num_classes, **{**kwargs, "logit_margins": False})
