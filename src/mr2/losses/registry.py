"""One list of losses for the CLI, configs and tests: ``create(name, num_classes=K, ...)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from mr2._registry import Entry, Registry


def _option_defaults(entry: Entry) -> dict[str, Any]:
    """A loss's keyword options and their defaults (num_classes excluded), following the
    ``**kwargs`` a class passes on to its base class (reduction, validate); the options
    an ablation fixes are left out."""
    target = entry.extra["options_from"] or entry.factory
    chain = (
        [vars(c)["__init__"] for c in target.__mro__ if "__init__" in vars(c)]
        if isinstance(target, type)
        else [target]
    )
    found: dict[str, Any] = {}
    for fn in chain:
        params = inspect.signature(fn).parameters.values()
        for p in params:
            if p.name not in ("self", "num_classes") and p.kind in (
                p.KEYWORD_ONLY,
                p.POSITIONAL_OR_KEYWORD,
            ):
                found.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params) or fn is nn.Module.__init__:
            break
    return {k: v for k, v in found.items() if k not in entry.extra["fixed"]}


LOSSES = Registry("loss", options_of=lambda entry: set(_option_defaults(entry)))


def register(
    name: str,
    description: str,
    options_from: Callable | None = None,
    fixed: dict[str, Any] | None = None,
) -> Callable:
    """Decorator: register a loss class (or factory) under ``name``. A factory that passes
    ``**kwargs`` on to a class names that class in ``options_from``; ``fixed`` options are
    set by the factory (an ablation's defining setting) and not accepted from the caller."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        return LOSSES.register(
            name, factory, description, options_from=options_from, fixed=dict(fixed or {})
        )

    return wrap


def available() -> list[str]:
    """Names of all registered losses, sorted."""
    return LOSSES.available()


def describe(name: str) -> str:
    return LOSSES.entry(name).description


def presets(name: str) -> list[str]:
    """Named settings of loss ``name`` (``create(..., preset=...)``), e.g. MR²'s "official"."""
    entry = LOSSES.entry(name)
    return list(getattr(entry.extra["options_from"] or entry.factory, "PRESETS", ()))


def options(name: str) -> dict[str, Any]:
    """The keyword options of a loss and their defaults (num_classes excluded), including
    those a class passes on to its base class through ``**kwargs`` (reduction, validate)."""
    return _option_defaults(LOSSES.entry(name))


def accepts_text(name: str, option: str) -> bool:
    """True if loss ``name``'s option is annotated to take a string (e.g. MR²'s
    ``rep_temperature = "auto"``)."""
    entry = LOSSES.entry(name)
    target = entry.extra["options_from"] or entry.factory
    inits = (
        [vars(c)["__init__"] for c in target.__mro__ if "__init__" in vars(c)]
        if isinstance(target, type)
        else [target]
    )
    for fn in inits:
        param = inspect.signature(fn).parameters.get(option)
        if param is not None:
            return "str" in str(param.annotation)
    return False


def create(
    name: str,
    *,
    num_classes: int,
    preset: str = "",
    feature_dim: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build loss ``name`` for ``num_classes`` classes; unknown names and options raise
    ``ValueError`` listing what is accepted. ``preset`` names settings resolved with the
    class count and the feature width ``feature_dim`` (see ``presets``); ``kwargs``
    override them."""
    entry = LOSSES.entry(name)
    LOSSES.check_options(name, kwargs)
    base: dict[str, Any] = {}
    if preset:
        if preset not in presets(name):
            raise ValueError(
                f"loss {name!r} has no preset {preset!r}; available: {presets(name) or 'none'}"
            )
        target = entry.extra["options_from"] or entry.factory
        base = target.preset_options(preset, num_classes, feature_dim)  # type: ignore[union-attr]
    return entry.factory(num_classes, **{**base, **kwargs, **entry.extra["fixed"]})
