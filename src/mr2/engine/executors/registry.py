"""Executors by name: each is one file that registers an ``Executor`` subclass with its
description and the package it needs (``register``); ``create``, ``available`` and
``problems`` read the registry, so the comparison, its checks and the docs name none."""

from __future__ import annotations

from collections.abc import Callable
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


def problems(name: str, settings: dict[str, Any]) -> list[str]:
    """Every problem with executor ``name`` and its settings, without raising: an unknown
    name, its package missing, settings it refuses."""
    found = EXECUTORS.problems(name, "compare.executor", "pip install 'mr2[cluster]'")
    if found:
        return found
    return list(cast(type[Executor], EXECUTORS.entry(name).factory).problems(settings))


def create(name: str, *, jobs: int = 0, **settings: Any) -> Executor:
    """Executor ``name`` running ``jobs`` runs at once (0: one per GPU, else per core)."""
    kind = cast(type[Executor], EXECUTORS.entry(name).factory)
    return kind(kind.workers(jobs), settings)
