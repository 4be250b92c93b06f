"""Executors by name: each is one file that registers an ``Executor`` subclass with its
description and the package it needs (``register``); ``create``, ``available`` and
``problems`` read the registry, so the comparison, its checks and the docs name none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from mr2._registry import Registry
from mr2.engine.executors.base import Executor

EXECUTORS = Registry("executor")
T = TypeVar("T", bound=type[Executor])


def register(name: str, description: str, needs: str | None = None) -> Callable[[T], T]:
    """Class decorator: an ``Executor`` subclass under ``name``; ``needs``: the package it
    imports when it runs (checked before a comparison starts)."""

    def wrap(cls: T) -> T:
        EXECUTORS.register(name, cls, description, options=set(), needs=needs or ())
        return cls

    return wrap


def available() -> list[str]:
    return EXECUTORS.available()


def problems(name: str, options: dict[str, Any]) -> list[str]:
    """Every problem with executor ``name`` and its options (``compare.executor_options``),
    without raising: an unknown name, its package missing, options it refuses."""
    found = EXECUTORS.problems(name, "compare.executor", "pip install 'mr2[cluster]'")
    if found:
        return found
    kind = cast(type[Executor], EXECUTORS.entry(name).factory)
    return [f"executor {name!r}: {p}" for p in kind.problems(options)]


def create(name: str, out: str | Path = ".", *, jobs: int = 0, **options: Any) -> Executor:
    """Executor ``name`` running ``jobs`` runs at once (0: one per GPU, else per core) for
    the comparison in ``out``; raises ``ValueError`` for options it refuses."""
    errors = problems(name, options)
    if errors:
        raise ValueError("; ".join(errors))
    kind = cast(type[Executor], EXECUTORS.entry(name).factory)
    return kind(kind.workers(jobs), options, Path(out))
