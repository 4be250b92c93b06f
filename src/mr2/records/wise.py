"""WiSE-FT's record (``RUN/wise.json``, written by ``mr2 wise`` and ``compare.wise_alphas``):
one row per alpha with the same typed scores as a run's test evaluation
(``mr2.records.result.SplitScores``), read back type-checked. Files written before the rows held
support and confusion still read (those two left empty)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mr2.records.result import SplitScores
from mr2.records.storage import load_json
from mr2.records.typed_json import record_from


@dataclass
class WiseRow:
    """The model at ``alpha`` (0: zero-shot, 1: fine-tuned), scored on each split (None:
    the run has no such split). Easy / medium / hard in the summaries are ranked on the
    fine-tuned model (``WiseResult.ranking``), the same classes for every alpha."""

    alpha: float
    test: SplitScores | None = None
    val: SplitScores | None = None


@dataclass
class WiseResult:
    run: str
    rows: list[WiseRow]
    selected_alpha: float | None  # best validation mean-class accuracy; test never used
    select_metric: str
    class_names: list[str]
    ranking: dict[str, str] = field(default_factory=dict)  # split -> how classes were ranked

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def row(self, alpha: float) -> WiseRow:
        found = [r for r in self.rows if r.alpha == alpha]
        if not found:
            raise KeyError(f"no row for alpha {alpha} (alphas: {[r.alpha for r in self.rows]})")
        return found[0]

    @classmethod
    def from_dict(cls, data: Any, where: object = "wise.json") -> WiseResult:
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            rows = data["rows"]
            data = {
                "ranking": _legacy_ranking(rows),
                **data,
                "rows": [_legacy_row(r) for r in rows],
            }
        return record_from(cls, data, where)


def read_wise(path: str | Path) -> WiseResult:
    """The WiSE-FT record at ``path`` (a wise.json, or the run directory holding one)."""
    p = Path(path)
    p = p / "wise.json" if p.is_dir() else p
    return WiseResult.from_dict(load_json(p), p)


def _legacy_row(row: Any) -> Any:
    """A row of an older wise.json (scores without support and confusion) made readable."""
    if not isinstance(row, dict):
        return row
    out = dict(row)
    for split in ("val", "test"):
        scores = out.get(split)
        if isinstance(scores, dict) and "support" not in scores:
            out[split] = {"support": [], "confusion": [], **scores}
    return out


def _legacy_ranking(rows: list[Any]) -> dict[str, str]:
    """Older files kept the ranking's label inside each split's scores."""
    first = rows[0] if rows and isinstance(rows[0], dict) else {}
    return {
        split: scores["ranking"]
        for split in ("val", "test")
        if isinstance(scores := first.get(split), dict) and isinstance(scores.get("ranking"), str)
    }
