"""MR²'s named variants: logit margins only, representation margin only (the two
ablations), and reversed margins (the larger margins on the classes of smaller statistic)."""

from __future__ import annotations

from typing import Any

from mr2.losses.mr2.loss import MR2Loss
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


@register(
    "mr2_reversed",
    "MR² with reversed margins: gamma_k ∝ a_k^(-1/3) (margin_direction = decreasing)",
    MR2Loss,
    fixed={"margin_direction": "decreasing"},
)
def mr2_reversed(num_classes: int, **kwargs: Any) -> MR2Loss:
    return MR2Loss(num_classes, **{**kwargs, "margin_direction": "decreasing"})
