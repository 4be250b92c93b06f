"""MR²'s running class statistics as a module: the buffers, their EMA update, the margins,
s_bar and spreads read from them, and checkpoints (``MR2Loss`` is built on it)."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from torch import Tensor

from mr2 import distributed
from mr2 import functional as MF
from mr2.losses.base import ClassLoss
from mr2.losses.mr2 import class_stats as stats
from mr2.losses.mr2 import soft as mr2_soft


class MR2Statistics(ClassLoss):
    """The statistics half of ``MR2Loss``. A subclass sets the options read here in its
    constructor, then calls ``_register_statistics``.

    Running statistics (registered buffers, so they follow ``.to()``, ``state_dict()`` and
    checkpoints): ``sums`` (K, 2 + D), per class the count-weighted sums ``[W, W E||f||^2,
    W mu]`` (``mr2.losses.mr2.statistics``), and ``sq_dev_p`` (K,) the mean squared
    deviation in the p-norm when p != 2. Read them as ``weight`` (K,) effective sample
    count, ``class_mean`` (K, D) and ``sq_dev`` (K, 2) mean squared deviation in the p-norm
    (margins) and in the 2-norm (``s_bar``). They are updated from each training batch by a
    count-weighted EMA (the pooling of ``functional.ema_merge``), after summing the batch's
    per-class sums over all processes (one collective), so every rank holds the margins of
    the global batch. In ``eval()`` mode the loss uses the current margins and changes
    nothing. Statistics carry no gradient: margins and ``s_bar`` act as constants. One
    training step with ``validate=False`` reads nothing back to the host and keeps its
    shapes, so it can be captured in a CUDA graph or compiled as one graph.
    """

    sums: Tensor
    sq_dev_p: Tensor
    c_bar: float
    ema_decay: float
    norm_p: float
    margin_statistic: str
    margin_direction: str
    rep_temperature: float | str
    lambda_rep: float
    logit_margins: bool
    process_group: Any

    STATISTICS = ("sums", "sq_dev_p")
    frozen = False  # set by ``statistics_frozen()``: training without updating statistics
    warned_no_grad = False

    def _register_statistics(self) -> None:
        """The buffers, float64 (``stats.DTYPE``); D columns on first use."""
        self.register_buffer("sums", torch.zeros(self.num_classes, 2, dtype=stats.DTYPE))
        self.register_buffer("sq_dev_p", torch.zeros(self.num_classes, dtype=stats.DTYPE))

    def _apply(self, fn, recurse=True):
        """``.half()`` / ``.float()`` / ``.to(dtype)`` move the statistics but keep them in
        float64 (``statistics.DTYPE``; float32 where a device has no float64): they are
        sums whose differences must not cancel, and float16 sums overflow."""
        out = super()._apply(fn, recurse)
        for name in self.STATISTICS:
            buf = getattr(self, name)
            wanted = stats.dtype_for(buf.device)
            if buf.dtype != wanted:
                setattr(self, name, buf.to(wanted))
        return out

    @property
    def weight(self) -> Tensor:
        """(K,) effective sample count per class (0: never seen)."""
        return self.sums[:, stats.COUNT]

    @property
    def class_mean(self) -> Tensor:
        """(K, D) running class means (0 for unseen classes; D = 0 before the first batch)."""
        return torch.nan_to_num(stats.means(self.sums))

    @property
    def sq_dev(self) -> Tensor:
        """(K, 2) running mean squared deviation in the p-norm and in the 2-norm."""
        two = self.spreads()
        return torch.stack([two if self.norm_p == 2.0 else self.sq_dev_p, two], 1)

    def seen(self) -> Tensor:
        """(K,) bool: classes observed at least once in training."""
        return self.weight > 0

    def margins(self) -> Tensor:
        """Current per-class margins gamma (K,); c_bar for unseen classes."""
        a, seen = stats.mean_sq_norm(self.sums), stats.seen_count(self.sums)
        floored, norm = MF.floored_roots(self._statistic(a), seen, self.c_bar)
        return torch.nan_to_num(floored / norm, nan=self.c_bar)

    def _statistic(self, a: Tensor) -> Tensor:
        p_column = None if self.norm_p == 2.0 else self.sq_dev_p
        a = stats.statistic(self.sums, a, p_column, self.norm_p, self.margin_statistic)
        return a if self.margin_direction == "increasing" else stats.reciprocal(a)

    def s_bar(self) -> Tensor:
        """Mean over seen classes of the 2-norm mean squared deviation (0-dim tensor)."""
        sums = self.sums
        return stats.s_bar(sums, stats.mean_sq_norm(sums), stats.seen_count(sums))

    def spreads(self) -> Tensor:
        """Per-class mean squared deviation ||s_k||^2 in the 2-norm (K,)."""
        return torch.nan_to_num(stats.spread(self.sums, stats.mean_sq_norm(self.sums)))

    def reset_statistics(self) -> None:
        self.sums = self.sums.new_zeros(self.num_classes, 2)
        self.sq_dev_p.zero_()

    @torch.no_grad()
    def update_statistics(self, features: Tensor, targets: Tensor) -> None:
        """Fold one batch into the running statistics (summed over processes first);
        ``targets`` are class indices (B,) or soft targets (B, K) (``soft``)."""
        if targets.dim() == 2:
            targets = mr2_soft.class_evidence(MF.as_fp32(targets))
        self._update(MF.as_fp32(features.detach()), targets)

    def _update(self, f: Tensor, targets: Tensor) -> None:
        """The EMA step from a batch's features and labels (B,) or class weights (B, K): in
        place from the rows with labels in one process, else from the batch's sums per class
        (summed over processes first; the p-norm column needs them too)."""
        if self.sums.shape[1] == 2:
            self.sums = self.sums.new_zeros(self.num_classes, 2 + f.shape[1])
        elif self.sums.shape[1] != 2 + f.shape[1]:
            raise ValueError(
                f"features have {f.shape[1]} columns but the statistics were built with "
                f"{self.sums.shape[1] - 2}"
            )
        group, decay = self.process_group, self.ema_decay
        rows = stats.sample_rows(f, self.sums.dtype)
        if targets.dim() == 1 and self.norm_p == 2.0 and not distributed.is_distributed(group):
            ok = self._accepted(stats.representable(rows, decay))
            stats.fold_rows_(self.sums, rows, targets, decay, ok)
            return
        batch = distributed.all_reduce_sum(stats.batch_sums(rows, targets, self.num_classes), group)
        ok = stats.representable(batch, decay)
        if self.norm_p != 2.0:
            p_dev = self._pnorm_spread(f, targets, batch)
            ok = self._accepted(ok & stats.representable(p_dev, 0.0))
            torch.where(ok, p_dev, self.sq_dev_p, out=self.sq_dev_p)
        else:
            ok = self._accepted(ok)
        stats.fold_sums_(self.sums, batch, decay, ok)

    def _pnorm_spread(self, f: Tensor, targets: Tensor, batch: Tensor) -> Tensor:
        """The p-norm column after this batch: deviations around the global batch's class
        means, pooled with the running column (``stats.merge_pnorm_spread``)."""
        count = batch[:, :1]
        means = (batch[:, stats.MEAN :] / torch.where(count > 0, count, 1.0)).to(f.dtype)
        if targets.dim() == 2:  # soft: class weights (B, K)
            dev = mr2_soft.deviation_sums(f, targets, means, self.norm_p)
        else:
            dev = MF.class_deviation_sums(f, targets, means, (self.norm_p,))[:, 0]
        dev = distributed.all_reduce_sum(dev.to(batch.dtype), self.process_group)
        return stats.merge_pnorm_spread(
            self.sums, self.sq_dev_p, batch, dev, self.ema_decay, self.norm_p
        )

    def _accepted(self, ok: Tensor) -> Tensor:
        """A batch that would make the statistics non-finite in float32 (huge features,
        float16 norms) leaves them untouched: refused with a ``ValueError``
        (``validate=True``), or skipped without a host sync (``validate=False``)."""
        if self.validate and not bool(ok):
            raise ValueError(
                "MR2Loss: this batch's features would make the running class statistics "
                "non-finite (squared feature norms overflow float32); the statistics are "
                "unchanged. Check the features for exploding values (lower the learning "
                "rate or a loss weight such as lambda_rep, clip gradients) or rescale them."
            )
        return ok

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        legacy = [prefix + name for name in ("weight", "class_mean", "sq_dev")]
        if all(key in state_dict for key in legacy):  # saved by mr2 <= 0.9
            sums, p_dev = stats.from_legacy(*(state_dict.pop(key) for key in legacy))
            state_dict[prefix + "sums"], state_dict[prefix + "sq_dev_p"] = sums, p_dev
        incoming = state_dict.get(prefix + "sums")
        if incoming is not None and incoming.shape != self.sums.shape:
            if incoming.shape[0] != self.num_classes:
                raise ValueError(
                    f"checkpoint has statistics for {incoming.shape[0]} classes, "
                    f"this loss has num_classes = {self.num_classes}"
                )
            self.sums = self.sums.new_zeros(incoming.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @contextlib.contextmanager
    def statistics_frozen(self):
        """Compute the loss in training mode without updating the running statistics."""
        self.frozen, before = True, self.frozen
        try:
            yield self
        finally:
            self.frozen = before

    def _warn_if_no_grad(self) -> None:
        """A loss called under ``torch.no_grad()`` in ``train()`` mode (a validation pass
        that forgot ``loss_fn.eval()``) still updates the statistics: said once."""
        if not self.training or self.frozen or torch.is_grad_enabled() or self.warned_no_grad:
            return
        self.warned_no_grad = True
        warnings.warn(
            "MR2Loss is in train() mode under torch.no_grad(): this batch updates the running "
            "class statistics (and so the margins). For a validation or test pass call "
            "loss_fn.eval() first (or use loss_fn.statistics_frozen()).",
            stacklevel=5,
        )

    def inverse_margins(self) -> Tensor:
        """1 / gamma_k for every class (K,), 1 / c_bar for classes not seen yet."""
        return self.margins().reciprocal()

    def _statistics(self, z: Tensor, f: Tensor, y: Tensor, column: Tensor):
        """One step's (1 / gamma_{y_i} as a (B, 1) column or None, s_bar, scale) after the
        batch's update (training; labels ``y`` (B,), also as ``column`` (B, 1)); in
        ``eval()`` or frozen, from the statistics as they are. In training the batch's
        classes were just seen, so no margin needs the unseen classes' default."""
        update = self.training and not self.frozen
        if update:
            self._update(f, y)
        a, seen = stats.mean_sq_norm(self.sums), stats.seen_count(self.sums)
        inv = shift = scale = None
        if self.logit_margins:
            floored, norm = MF.floored_roots(self._statistic(a), seen, self.c_bar)
            inv = (norm / floored[column]).to(z.dtype)
            inv = inv if update else torch.nan_to_num(inv, nan=1.0 / self.c_bar)
        if self.lambda_rep > 0:
            shift, scale = self._rep_scale(a, seen, f.dtype)
        return inv, shift, scale

    def _rep_scale(self, a: Tensor, seen: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(s_bar, scale) of the representation exponent (d - 2 s_bar) / scale: scale =
        the temperature, or 2 s_bar for "auto" (1 while s_bar is 0); ``a`` the classes'
        A_k (``stats.mean_sq_norm``)."""
        s = stats.s_bar(self.sums, a, seen).to(dtype)
        if self.rep_temperature == "auto":
            return s, (s * 2.0).add_(s == 0)  # s_bar >= 0
        return s, torch.full_like(s, float(self.rep_temperature))
