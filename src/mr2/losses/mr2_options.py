"""MR²'s option ranges as one check that raises nothing: ``MR2Loss`` raises what it finds,
and config validation reports it before anything is built (the loss registry's check for
"mr2" and its ablations), so the loss is never built just to test its options."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MARGIN_STATISTICS = ("paper", "centered", "spread")
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


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str | None:
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


def problems(options: Mapping[str, Any]) -> list[str]:
    """What is out of range among MR2Loss's ``options`` (those not given are its defaults,
    which are in range)."""
    o = options
    found = [
        _unit("ema_decay", o.get("ema_decay", 0.99)),
        None if _real(p := o.get("norm_p", 2.0)) and p >= 1.0 else
        f"norm_p must be a finite p >= 1, got {p}",
        _positive("lambda_rep", o.get("lambda_rep", 0.03), allow_zero=True),
        _positive("c_bar", o.get("c_bar", 1.0)),
        _temperature(o.get("rep_temperature", "auto")),
        _choice("margin_statistic", o.get("margin_statistic", "paper"), MARGIN_STATISTICS),
        _unit("label_smoothing", o.get("label_smoothing", 0.0)),
        _choice("rep_reduction", o.get("rep_reduction", "sample"), REP_REDUCTIONS),
        _choice("reduction", o.get("reduction", "mean"), REDUCTIONS),
    ]  # fmt: skip
    return [message for message in found if message is not None]
