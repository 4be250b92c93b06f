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
    """The keyword options of a loss and their defaults (num_classes excluded)."""
    factory, _, options_from = _lookup(name)
    sig = inspect.signature(options_from or factory)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "num_classes" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


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
