"""WiSE-FT's weight-space ensemble (Wortsman et al., 2022): interpolate a zero-shot and a
fine-tuned model, ``theta(alpha) = (1 - alpha) theta_zs + alpha theta_ft``. The evaluation
of every alpha on a run is ``mr2.engine.wise.run_wise``."""

from __future__ import annotations

import torch
from torch import Tensor


def interpolate(
    zero_shot: dict[str, Tensor], finetuned: dict[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    """Weight-space interpolation of two state dicts with the same keys; integer buffers
    (e.g. BatchNorm's counters) are taken from the fine-tuned model."""
    if set(zero_shot) != set(finetuned):
        diff = sorted(set(zero_shot) ^ set(finetuned))
        raise ValueError(f"the two models differ in their parameters: {diff[:5]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    out = {}
    for k, ft in finetuned.items():
        zs = zero_shot[k]
        if zs.shape != ft.shape:
            raise ValueError(f"{k}: shapes {tuple(zs.shape)} and {tuple(ft.shape)} differ")
        out[k] = torch.lerp(zs.to(ft.dtype), ft, alpha) if ft.is_floating_point() else ft.clone()
    return out
