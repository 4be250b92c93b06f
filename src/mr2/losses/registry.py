"""One list of losses for the CLI, configs and tests: ``create(name, num_classes=K, ...)``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

from torch import nn


class _Entry(NamedTuple):
    factory: Callable[..., nn.Module]
    description: str
    options_from: Callable | None
    fixed: dict[str, Any]


_REGISTRY: dict[str, _Entry] = {}


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
        if name in _REGISTRY:
            raise ValueError(f"loss {name!r} is registered twice")
        _REGISTRY[name] = _Entry(factory, description, options_from, dict(fixed or {}))
        return factory

    return wrap


def available() -> list[str]:
    """Names of all registered losses, sorted."""
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    return _lookup(name).description


def presets(name: str) -> list[str]:
    """Named settings of loss ``name`` (``create(..., preset=...)``), e.g. MR²'s "official"."""
    entry = _lookup(name)
    return list(getattr(entry.options_from or entry.factory, "PRESETS", ()))


def options(name: str) -> dict[str, Any]:
    """The keyword options of a loss and their defaults (num_classes excluded), including
    those a class passes on to its base class through ``**kwargs`` (reduction, validate)."""
    factory, _, options_from, fixed = _lookup(name)
    target = options_from or factory
    chain = (
        [c.__init__ for c in target.__mro__ if "__init__" in vars(c)]
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
    return {k: v for k, v in found.items() if k not in fixed}


def accepts_text(name: str, option: str) -> bool:
    """True if loss ``name``'s option is annotated to take a string (e.g. MR²'s
    ``rep_temperature = "auto"``)."""
    entry = _lookup(name)
    target = entry.options_from or entry.factory
    inits = (
        [c.__init__ for c in target.__mro__ if "__init__" in vars(c)]
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
    entry = _lookup(name)
    accepted = options(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        hint = "".join(
            f" ({u!r}: did you mean {c[0]!r}?)"
            for u in unknown
            if (c := difflib.get_close_matches(u, list(accepted), n=1, cutoff=0.6))
        )
        raise ValueError(
            f"unknown option(s) {unknown} for loss {name!r}{hint}; accepted: {sorted(accepted)}"
        )
    base: dict[str, Any] = {}
    if preset:
        if preset not in presets(name):
            raise ValueError(
                f"loss {name!r} has no preset {preset!r}; available: {presets(name) or 'none'}"
            )
        target = entry.options_from or entry.factory
        base = target.preset_options(preset, num_classes, feature_dim)  # type: ignore[union-attr]
    return entry.factory(num_classes, **{**base, **kwargs, **entry.fixed})


def _lookup(name: str) -> _Entry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, available(), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown loss {name!r}{hint}; available: {', '.join(available())}")
    return _REGISTRY[name]
