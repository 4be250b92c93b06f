"""One list of losses for the CLI, configs and tests: ``create(name, num_classes=K, ...)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], str, Callable | None]] = {}


def register(name: str, description: str, options_from: Callable | None = None) -> Callable:
    """Decorator: register a loss class (or factory) under ``name``. A factory that passes
    ``**kwargs`` on to a class names that class in ``options_from``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"loss {name!r} is registered twice")
        _REGISTRY[name] = (factory, description, options_from)
        return factory

    return wrap


def available() -> list[str]:
    """Names of all registered losses, sorted."""
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    return _lookup(name)[1]


def options(name: str) -> dict[str, Any]:
    """The keyword options of a loss and their defaults (num_classes excluded), including
    those a class passes on to its base class through ``**kwargs`` (reduction, validate)."""
    factory, _, options_from = _lookup(name)
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
    return found


def create(name: str, *, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build loss ``name`` for ``num_classes`` classes; unknown names and options raise
    ``ValueError`` listing what is accepted."""
    factory = _lookup(name)[0]
    accepted = options(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for loss {name!r}; accepted: {sorted(accepted)}"
        )
    return factory(num_classes, **kwargs)


def _lookup(name: str) -> tuple[Callable[..., nn.Module], str, Callable | None]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]
