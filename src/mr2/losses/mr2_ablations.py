"""MR²'s two ablations, registered by name: logit margins only, representation margin
only."""

from __future__ import annotations

from typing import Any

from mr2.losses.mr2 import MR2Loss
from mr2.losses.registry import register


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
