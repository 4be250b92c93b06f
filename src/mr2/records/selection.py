"""A comparison's choice of settings on validation: ``OUT/<method>/selection.json``, written
when a method's grid has been trained on the tuning seeds (``mr2.engine.compare.tuning``),
read back type-checked by the comparison (to reuse its runs) and by the report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mr2.records.storage import load_json
from mr2.records.typed_json import record_from


@dataclass
class GridPoint:
    point: dict[str, Any]  # the grid's options at this point
    label: str  # its folder name under OUT/<method>/grid
    val_scores: list[float]  # per tuning seed (NaN: undefined, never selected)
    val_score: float  # their mean


@dataclass
class Selection:
    method: str
    metric: str  # e.g. "validation hard"
    tune_seeds: list[int]
    grid: list[GridPoint]
    selected: dict[str, Any]  # the chosen point (the first of equals; never a NaN one)
    options: dict[str, Any]  # the method's options with the chosen point applied

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: object = "selection.json") -> Selection:
        return record_from(cls, data, where)


def read_selection(path: str | Path) -> Selection:
    """The selection at ``path`` (a selection.json, or the method folder holding one)."""
    p = Path(path)
    p = p / "selection.json" if p.is_dir() else p
    return Selection.from_dict(load_json(p), p)
