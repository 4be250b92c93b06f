"""One registry helper for every kind of thing mr2 builds by name (losses, models,
backbones, datasets, procedures): register / available / describe / options / create,
with the same errors everywhere: an unknown name lists what exists (with a "did you mean"),
an unknown option lists what the factory accepts."""

from __future__ import annotations

import difflib
import importlib.util
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any


def suggest(name: str, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ""."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def keyword_options(target: Callable, exclude: set[str]) -> set[str]:
    """Names a callable accepts by keyword (a ``functools.partial`` is unwrapped, its bound
    keywords left out), without ``exclude`` and without ``*args`` / ``**kwargs``."""
    bound: set[str] = set()
    while isinstance(target, partial):
        bound |= set(target.keywords)
        target = target.func
    params = inspect.signature(target).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name for p in params if p.kind in kinds} - exclude - bound


@dataclass
class Entry:
    factory: Callable[..., Any]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)  # applied before the caller's
    options: set[str] | None = None  # None: read from the factory's signature
    extra: dict[str, Any] = field(default_factory=dict)  # what a kind keeps besides


class Registry(Mapping[str, Callable[..., Any]]):
    """Factories by name; read-only mapping name -> factory. ``exclude``: parameters every
    factory of this kind takes that are not user options (e.g. ``num_classes``)."""

    def __init__(
        self,
        kind: str,
        exclude: tuple[str, ...] = (),
        options_of: Callable[[Entry], set[str]] | None = None,
    ) -> None:
        self.kind, self.exclude, self.options_of = kind, set(exclude), options_of
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        description: str = "",
        *,
        defaults: dict[str, Any] | None = None,
        options: set[str] | None = None,
        **extra: Any,
    ) -> Callable[..., Any]:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        self._entries[name] = Entry(factory, doc, dict(defaults or {}), options, extra)
        return factory

    def unknown(self, name: str, where: str = "") -> str:
        """The one message for a name this registry does not hold (``where``: the setting
        that gave it, e.g. "train.procedure")."""
        return (
            f"{where + ': ' if where else ''}unknown {self.kind} {name!r}"
            f"{suggest(name, self.available())}; available: {', '.join(self.available())}"
        )

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise ValueError(self.unknown(name))
        return self._entries[name]

    def missing_package(self, name: str) -> str | None:
        """The first package entry ``name`` needs (``register(..., needs=...)``, one import
        name or several) that is not installed, or None."""
        needs = self.entry(name).extra.get("needs") or ()
        for package in (needs,) if isinstance(needs, str) else needs:
            if importlib.util.find_spec(package) is None:
                return str(package)
        return None

    def problems(self, name: str, where: str, install: str = "") -> list[str]:
        """What stops entry ``name`` from being built, without raising: an unknown name, a
        package it needs that is missing (``install``: how to get it)."""
        if name not in self._entries:
            return [self.unknown(name, where)]
        missing = self.missing_package(name)
        if missing:
            return [f"{where} = {name!r} needs {missing}{': ' + install if install else ''}"]
        return []

    def available(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {name: self._entries[name].description for name in self.available()}

    def options(self, name: str) -> set[str]:
        entry = self.entry(name)
        if entry.options is not None:
            return set(entry.options)
        if self.options_of is not None:
            return self.options_of(entry)
        return keyword_options(entry.factory, self.exclude)

    def check_options(self, name: str, kwargs: Mapping[str, Any]) -> None:
        accepted = self.options(name)
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            hint = "".join(
                f" ({u!r}: did you mean {c[0]!r}?)"
                for u in unknown
                if (c := difflib.get_close_matches(u, list(accepted), n=1, cutoff=0.6))
            )
            raise ValueError(
                f"{self.kind} {name!r} does not take option(s) {unknown}{hint}; "
                f"accepted: {sorted(accepted)}"
            )

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``factory(*args, **defaults, **kwargs)`` after checking the name and options."""
        self.check_options(name, kwargs)
        entry = self._entries[name]
        return entry.factory(*args, **{**entry.defaults, **kwargs})

    # read-only mapping name -> factory
    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._entries[name].factory

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
