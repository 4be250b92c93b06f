"""The datasets' registry (every loader module registers into it)."""

from __future__ import annotations

from mr2._registry import Registry

LOADERS = Registry("dataset", exclude=("name",))
