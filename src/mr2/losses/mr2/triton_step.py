"""MR²'s statistics step on a GPU in two Triton kernels instead of ~45 small operations.

A training step updates the running class sums, guards them, and derives the batch's
inverse margins and the representation term's ``s_bar`` and scale: in PyTorch about 45
operations on (K,)-sized tensors, each a kernel launch of a few microseconds. Here:

1. ``_scatter`` (one program per sample): adds ``[1, ||f_i||^2, f_i]`` to row y_i of the
   batch's sums (float64 atomics) and writes the sample's negated one-hot row;
2. ``_finish`` (one program): merges the batch into the running sums with the EMA, commits
   them only if their float64 total is within float32's range (the guard of
   ``MR2Loss._commit``), clears the batch buffer, and computes per class a_k = A_k (the
   paper's statistic for the 2-norm) and s_k^2, then the floored margins (as
   ``statistics.margins``), 1 / gamma_{y_i} for the batch, ``s_bar`` and the scale.

Used for ``MR2Loss`` on CUDA tensors with the 2-norm and the paper's statistic while
K (D + 2) <= ``MAX_ELEMENTS`` (one program walks the sums; bigger statistics take the
PyTorch path until this is measured on a GPU); ``MR2_TRITON=0`` in the environment switches
them off. The cube roots are taken in float32 (the PyTorch path: float64), a relative
difference of about 1e-7 in the margins; the atomics make the float64 sums' last bits
depend on the order of the samples. Tested on the CPU
with Triton's interpreter (``TRITON_INTERPRET=1``) against the PyTorch path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import _disable_current_modes

kernels: Any
try:
    import triton

    from mr2.losses.mr2 import kernels as kernels
except ImportError:  # torch's CPU-only builds come without Triton: the PyTorch path runs
    triton = None
    kernels = None

MAX_ELEMENTS = 1 << 18
LAUNCH_HOOKS: list[Callable[[str], None]] = []  # told of every launch (benchmarks/op_count.py)
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def _launch(name: str, kernel, grid, *args, **meta) -> None:
    for hook in LAUNCH_HOOKS:
        hook(name)
    if INTERPRETED:  # the interpreter's own tensor copies are not the step's operations
        with _disable_current_modes():
            kernel[grid](*args, **meta)
    else:
        kernel[grid](*args, **meta)


class Workspace:
    """The batch-sums and per-class scratch buffers of one loss (cleared by ``_finish``
    after use, so they are reused without a fill: never saved for backward)."""

    def __init__(self) -> None:
        self.rows: Tensor | None = None
        self.scratch: Tensor | None = None
        self.checked = False  # the first step was redone in PyTorch and agreed
        self.usable = True  # False once a check disagreed

    def get(self, sums: Tensor) -> tuple[Tensor, Tensor]:
        if self.rows is None or self.rows.shape != sums.shape or self.rows.device != sums.device:
            self.rows = torch.zeros_like(sums)
            self.scratch = sums.new_empty(3 * sums.shape[0])
        assert self.scratch is not None
        return self.rows, self.scratch


def step(
    sums: Tensor, f: Tensor, y: Tensor, logits: Tensor, space: Workspace, *,
    decay: float, c_bar: float, temperature: float | None,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """One statistics step: updates ``sums`` in place; returns (negated one-hot (B, K) in
    the logits' dtype, 1 / gamma_{y_i} (B, 1), s_bar (1,), scale (1,)).
    ``reduce``: sums the batch's rows over processes between the two kernels."""
    b, d = f.shape
    k = sums.shape[0]
    y = y.contiguous()  # the kernels read label i at i
    rows, scratch = space.get(sums)
    # row-major whatever the logits' layout: the scatter kernel writes row i at i * K
    onehot = torch.empty(logits.shape, device=logits.device, dtype=logits.dtype)
    inv = torch.empty(b, 1, device=f.device, dtype=logits.dtype)
    s_bar = torch.empty(1, device=f.device, dtype=f.dtype)
    scale = torch.empty(1, device=f.device, dtype=f.dtype)
    bd = min(triton.next_power_of_2(d), 256)
    _launch("scatter", kernels.scatter, (b,), f, y, rows, onehot, d, k, f.stride(0), BD=bd, BK=128)
    if reduce is not None:
        reduce(rows)
    auto = temperature is None
    _launch(
        "finish", kernels.finish, (1,), sums, rows, y, inv, s_bar, scale, scratch, k, d, b,
        decay, c_bar, 1.0 if auto else temperature, AUTO=auto, BK=16, BC=128, BB=128,
    )  # fmt: skip
    return onehot, inv, s_bar, scale


def usable(sums: Tensor, f: Tensor) -> bool:
    """Whether the kernels take this step: CUDA tensors (or the interpreter, for tests) and
    statistics small enough for one program."""
    if kernels is None or os.environ.get("MR2_TRITON") == "0":  # MR2_TRITON=0: switched off
        return False
    on_device = f.is_cuda or (INTERPRETED and os.environ.get("MR2_TRITON") == "1")
    return on_device and sums.shape[0] * (f.shape[1] + 2) <= MAX_ELEMENTS and f.stride(1) == 1
