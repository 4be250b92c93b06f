"""MR²'s option ranges as one check that raises nothing: ``MR2Loss`` raises what it finds,
and config validation reports it before anything is built (the loss registry's check for
"mr2" and its ablations), so the loss is never built just to test its options."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

MARGIN_STATISTICS = ("paper", "centered", "spread")
MARGIN_DIRECTIONS = ("increasing", "decreasing")
REP_REDUCTIONS = ("sample", "class")
REDUCTIONS = ("mean", "sum", "none")


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: Any, allow_zero: bool = False) -> str | None:
    if _real(value) and (value >= 0 if allow_zero else value > 0):
        return None
    return f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}"


def _unit(name: str, value: Any) -> str | None:
    return (
        None if _real(value) and 0.0 <= value < 1.0 else f"{name} must lie in [0, 1), got {value}"
    )


def _choice(name: str, value: Any, *, choices: tuple[str, ...]) -> str | None:
    if value in choices:
        return None
    listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
    return f"{name} must be {listed}, got {value!r}"


def _temperature(value: Any) -> str | None:
    if value == "auto":
        return None
    if isinstance(value, str):
        return f"rep_temperature must be > 0 or 'auto', got {value!r}"
    return _positive("rep_temperature", value)


def _norm_p(value: Any) -> str | None:
    return None if _real(value) and value >= 1.0 else f"norm_p must be a finite p >= 1, got {value}"


RANGES: dict[str, Callable[[Any], str | None]] = {
    "ema_decay": partial(_unit, "ema_decay"),
    "norm_p": _norm_p,
    "lambda_rep": partial(_positive, "lambda_rep", allow_zero=True),
    "c_bar": partial(_positive, "c_bar"),
    "rep_temperature": _temperature,
    "margin_statistic": partial(_choice, "margin_statistic", choices=MARGIN_STATISTICS),
    "margin_direction": partial(_choice, "margin_direction", choices=MARGIN_DIRECTIONS),
    "label_smoothing": partial(_unit, "label_smoothing"),
    "rep_reduction": partial(_choice, "rep_reduction", choices=REP_REDUCTIONS),
    "reduction": partial(_choice, "reduction", choices=REDUCTIONS),
}


def problems(options: Mapping[str, Any]) -> list[str]:
    """What is out of range among the MR2Loss ``options`` given (its defaults are in
    range; options without a range here are not looked at)."""
    found = [RANGES[key](value) for key, value in options.items() if key in RANGES]
    return [message for message in found if message is not None]
