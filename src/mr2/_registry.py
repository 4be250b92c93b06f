"""One registry helper for every kind of thing mr2 builds by name (losses, models,
backbones, datasets, procedures, executors, loggers, optimisers, schedules).

An entry carries its whole contract: the factory, its typed options (``Option``: default
and the scalar types its annotation names; read once from the factory's signature, or
given), the packages it needs, and a non-raising ``check(name, options)`` for what no
signature says (ranges, files). The same errors everywhere: an unknown name lists what
exists (with a "did you mean"), an unknown option lists what the entry accepts. A *family*
entry (``"timm:"``) holds every name with its prefix (``"timm:resnet18"``): its options go
unchecked by name, to its check."""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

REQUIRED = inspect.Parameter.empty  # an option without a default
Check = Callable[[str, Mapping[str, Any]], list[str]]


def suggest(name: str, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ""."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


SCALARS: dict[str, type | tuple[type, ...]] = {
    "float": (int, float), "int": int, "str": str, "bool": bool, "None": type(None)
}  # fmt: skip


@dataclass(frozen=True)
class Option:
    """One option an entry takes: its default (``REQUIRED`` if none) and the scalar types
    its annotation names (``("float", "str")`` for ``float | str``; empty: the default's
    type decides)."""

    default: Any = REQUIRED
    kinds: tuple[str, ...] = ()

    def type_problem(self, where: str, value: Any) -> str | None:
        """A message if ``value`` is not of the option's types (None: no opinion, for an
        option without a scalar annotation or default)."""
        kinds = self.kinds or (type(self.default).__name__,)
        if any(k not in SCALARS for k in kinds):  # a list, a None or no default: no opinion
            return None
        ok = any(
            isinstance(value, SCALARS[k]) and (k == "bool" or not isinstance(value, bool))
            for k in kinds
        )
        return None if ok else f"{where}: expected {' or '.join(kinds)}, got {value!r}"


def _kinds(annotation: Any) -> tuple[str, ...]:
    """The scalar type names of an annotation: a string such as ``"int | None"`` or
    ``"Optional[float]"`` (a module with ``from __future__ import annotations``) or the
    types themselves (``float``, ``int | None``, ``typing.Optional[str]``); () if it names
    anything else."""
    if isinstance(annotation, str):
        text = annotation.strip()
        if text.startswith("Optional[") and text.endswith("]"):
            text = text[len("Optional[") : -1] + " | None"
        names = [n.strip() for n in text.split("|")]
    else:
        args = typing.get_args(annotation)
        is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        members = args if is_union else (annotation,)
        names = [getattr(m, "__name__", str(m)) for m in members]
        names = ["None" if n == "NoneType" else n for n in names]
    return tuple(names) if all(n in SCALARS for n in names) else ()


def signature_options(target: Callable, exclude: set[str]) -> dict[str, Option]:
    """The options a callable takes by keyword (a ``functools.partial`` is unwrapped, its
    bound keywords left out), without ``exclude`` and without ``*args`` / ``**kwargs``."""
    bound: set[str] = set()
    while isinstance(target, partial):
        bound |= set(target.keywords)
        target = target.func
    params = inspect.signature(target).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {
        p.name: Option(p.default, _kinds(p.annotation) if p.annotation is not p.empty else ())
        for p in params
        if p.kind in kinds and p.name not in exclude | bound
    }


def keyword_options(target: Callable, exclude: set[str]) -> set[str]:
    """Names a callable accepts by keyword (``signature_options``)."""
    return set(signature_options(target, exclude))


@dataclass
class Entry:
    factory: Callable[..., Any]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)  # applied before the caller's
    options: dict[str, Option] | None = None  # None: read once from the factory
    extra: dict[str, Any] = field(default_factory=dict)  # what a kind keeps besides
    check: Check | None = None  # problems of the options' values, without raising
    needs: tuple[str, ...] = ()  # import names of the packages it is built with
    family: bool = False  # holds every name "<prefix><model>"
    member_problem: Callable[[str], str | None] | None = None  # a family: is this name one?


def _as_options(options: set[str] | Mapping[str, Any] | None) -> dict[str, Option] | None:
    """Given options as ``Option``s: names only (a set) or names and defaults."""
    if options is None:
        return None
    if isinstance(options, set):
        return {name: Option() for name in options}
    return {k: v if isinstance(v, Option) else Option(v) for k, v in options.items()}


class Registry(Mapping[str, Callable[..., Any]]):
    """Factories by name; read-only mapping name -> factory. ``exclude``: parameters every
    factory of this kind takes that are not user options (e.g. ``num_classes``)."""

    def __init__(
        self,
        kind: str,
        exclude: tuple[str, ...] = (),
        options_of: Callable[[Entry], dict[str, Option]] | None = None,
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
        options: set[str] | Mapping[str, Any] | None = None,
        check: Check | None = None,
        needs: str | tuple[str, ...] = (),
        family: bool = False,
        member_problem: Callable[[str], str | None] | None = None,
        **extra: Any,
    ) -> Callable[..., Any]:
        """Add entry ``name``. ``options``: the option names (a set) or names and defaults
        (a mapping), when the factory's signature does not say them; ``check(name,
        options)``: what is wrong with the values, as messages; ``needs``: import names of
        packages; ``family``: ``name`` is a prefix ("timm:") and the entry holds every
        name that starts with it, ``member_problem(name)`` saying why a name is not one."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        packages = (needs,) if isinstance(needs, str) else tuple(needs)
        self._entries[name] = Entry(
            factory, doc, dict(defaults or {}), _as_options(options), extra, check, packages,
            family, member_problem,
        )  # fmt: skip
        return factory

    def _find(self, name: str) -> Entry | None:
        if name in self._entries:
            return self._entries[name]
        prefix, sep, _ = name.partition(":")
        entry = self._entries.get(prefix + sep) if sep else None
        return entry if entry is not None and entry.family else None

    def families(self) -> list[str]:
        return sorted(n for n, e in self._entries.items() if e.family)

    def unknown(self, name: str, where: str = "", also: list[str] | None = None) -> str:
        """The one message for a name this registry does not hold (``where``: the setting
        that gave it, e.g. "train.procedure"; ``also``: names of another registry the same
        setting takes, listed with these)."""
        names = sorted([*self.available(), *(also or [])])
        families = "".join(f", or {p}<name>" for p in self.families())
        return (
            f"{where + ': ' if where else ''}unknown {self.kind} {name!r}"
            f"{suggest(name, names)}; available: {', '.join(names)}{families}"
        )

    def entry(self, name: str) -> Entry:
        found = self._find(name)
        if found is None:
            raise ValueError(self.unknown(name))
        return found

    def missing_package(self, name: str) -> str | None:
        """The first package entry ``name`` needs (``register(..., needs=...)``) that is not
        installed, or None."""
        for package in self.entry(name).needs:
            if importlib.util.find_spec(package) is None:
                return package
        return None

    def problems(self, name: str, where: str, install: str = "") -> list[str]:
        """What stops entry ``name`` from being built, without raising: an unknown name, a
        package it needs that is missing (``install``: how to get it), a name its family
        does not hold."""
        entry = self._find(name)
        if entry is None:
            return [self.unknown(name, where)]
        missing = self.missing_package(name)
        if missing:
            return [f"{where} = {name!r} needs {missing}{': ' + install if install else ''}"]
        if entry.member_problem is not None and (msg := entry.member_problem(name)):
            return [f"{where}: {msg}"]
        return []

    def option_problems(self, name: str, options: Mapping[str, Any], where: str) -> list[str]:
        """What is wrong with ``options`` for entry ``name``, without raising: names it
        does not take, values of another type than their default, then (only if those
        are fine) the entry's own check. ``where``: the setting, e.g. "loss.options"."""
        entry = self.entry(name)
        errors = []
        if not entry.family:
            spec = self.spec(name)
            for key, value in options.items():
                if key not in spec:
                    errors.append(
                        f"{where}.{key}: {self.kind} {name!r} does not take it"
                        f"{suggest(key, sorted(spec))}; accepted: {sorted(spec)}"
                    )
                elif (msg := spec[key].type_problem(f"{where}.{key}", value)) is not None:
                    errors.append(msg)
        if not errors and entry.check is not None:
            errors = [f"{where}: {message}" for message in entry.check(name, options)]
        return errors

    def available(self) -> list[str]:
        """The names of the entries (families, listed by ``families``, left out)."""
        return sorted(n for n, e in self._entries.items() if not e.family)

    def describe(self) -> dict[str, str]:
        """Name -> one line, a family as "<prefix><name>"."""
        named = {name: self._entries[name].description for name in self.available()}
        return named | {f"{p}<name>": self._entries[p].description for p in self.families()}

    def spec(self, name: str) -> dict[str, Option]:
        """Entry ``name``'s options with their defaults, read once (a family's: {})."""
        entry = self.entry(name)
        if entry.options is None:
            if entry.family:
                return {}
            if self.options_of is not None:
                entry.options = self.options_of(entry)
            else:
                entry.options = signature_options(entry.factory, self.exclude)
        return dict(entry.options)

    def options(self, name: str) -> set[str]:
        return set(self.spec(name))

    def check_options(self, name: str, kwargs: Mapping[str, Any]) -> None:
        if self.entry(name).family:
            return  # a family's options go to its factory as they are
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
        """``factory(*args, **defaults, **kwargs)`` after checking the name and options (a
        family's factory takes the whole name first)."""
        self.check_options(name, kwargs)
        entry = self.entry(name)
        head = (name,) if entry.family else ()
        return entry.factory(*head, *args, **{**entry.defaults, **kwargs})

    # read-only mapping name -> factory
    def __getitem__(self, name: str) -> Callable[..., Any]:
        found = self._find(name)
        if found is None:
            raise KeyError(name)
        return found.factory

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
