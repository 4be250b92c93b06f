"""One training step's statistics for MR²: update the running sums with the batch, then
derive 1 / gamma_{y_i}, s_bar and the representation scale, in PyTorch or, on a GPU, as two
Triton kernels (``triton_step``), the kernels' first step checked against PyTorch."""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

from mr2 import distributed
from mr2.losses.mr2 import class_stats as stats
from mr2.losses.mr2 import triton_step as mr2_triton
from mr2.losses.mr2.state import MR2Statistics


class MR2Step(MR2Statistics):
    """The statistics step of ``MR2Loss`` (a subclass sets ``lambda_rep`` and
    ``logit_margins``)."""

    lambda_rep: float
    logit_margins: bool

    def _statistics(self, z: Tensor, f: Tensor, y: Tensor):
        """(1 / gamma_{y_i} or None, s_bar, scale) after this batch's update, in PyTorch."""
        update = self.training and not self.frozen
        if update:
            self._update(f, y)
        moments, seen = stats.means(self.sums), stats.seen_count(self.sums)
        inv_margin = shift = scale = None
        if self.logit_margins:
            inv_margin = self._inverse_margins(moments, y, seen, not update, z.dtype)
        if self.lambda_rep > 0:
            shift, scale = self._rep_scale(moments, seen, f.dtype)
        return inv_margin, shift, scale

    def _kernel_step(self, f: Tensor) -> bool:
        """Whether the statistics step runs as Triton kernels (``triton_step``): an eager
        training step on a GPU with the 2-norm and the paper's statistic (under
        ``torch.compile`` the PyTorch path is traced and fused by the compiler instead)."""
        return (
            not torch.compiler.is_compiling()
            and self.training
            and not self.frozen
            and self.norm_p == 2.0
            and self.margin_statistic == "paper"
            and self.margin_direction == "increasing"
            and not self.validate
            and self.sums.shape[1] == 2 + f.shape[1]
            and self._workspace.usable
            and mr2_triton.usable(self.sums, f)
        )

    def _statistics_by_kernels(self, z: Tensor, f: Tensor, y: Tensor):
        group = self.process_group
        reduce = None
        if distributed.is_distributed(group):
            reduce = functools.partial(distributed.all_reduce_sum, group=group)
        temperature = self.rep_temperature
        before = None if self._workspace.checked else self.sums.clone()
        neg_onehot, inv, s_bar, scale = mr2_triton.step(
            self.sums, f, y, z, self._workspace, decay=self.ema_decay, c_bar=self.c_bar,
            temperature=None if temperature == "auto" else float(temperature), reduce=reduce,
        )  # fmt: skip
        if before is not None:  # the first kernel step of this loss is checked once
            inv, s_bar, scale = self._check_kernels(z, f, y, before, (inv, s_bar, scale))
        return neg_onehot, inv if self.logit_margins else None, s_bar, scale

    def _check_kernels(self, z, f, y, before: Tensor, got: tuple[Tensor, Tensor, Tensor]):
        """Redo the kernels' first step in PyTorch (one host sync, once per loss) and compare:
        on a disagreement the PyTorch path's numbers are used and the kernels are switched
        off for this loss, with a warning, so a kernel fault never gives a wrong number."""
        after = self.sums.clone()
        self.sums.copy_(before)
        inv, s_bar, scale = self._statistics(z, f, y)  # updates the sums again, in PyTorch
        self._workspace.checked = True
        pairs = [(after, self.sums, 1e-6)]
        pairs += [
            (g, e, 1e-4) for g, e in zip(got, (inv, s_bar, scale), strict=True) if e is not None
        ]
        if all(torch.allclose(g.reshape(e.shape), e, rtol=r, atol=1e-7) for g, e, r in pairs):
            return got
        self._workspace.usable = False
        warnings.warn(
            "MR2Loss: the Triton kernels of the statistics step disagree with the PyTorch "
            f"path on this device ({f.device}); using the PyTorch path from now on. Please "
            "report it with your GPU, torch and triton versions.",
            stacklevel=5,
        )
        return inv if inv is not None else got[0], s_bar, scale  # lambda_rep 0: no s_bar
