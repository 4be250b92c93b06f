"""How a report ranks the classes (``mr2.metrics.hard`` applied to runs): the evidence each
run offers, the ranking every run supports, its record in results.json (``ranking_folds``)
and the display order, hardest first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mr2.metrics.hard import ClassEvidence, Fold, HardRanking, choose_ranking
from mr2.records.result import RunResult


def evidence(r: RunResult) -> ClassEvidence:
    """What a run offers the hard-class estimator: test, validation and test halves."""
    return ClassEvidence.of(r.test.per_class, r.val.per_class if r.val else None, r.test.halves)


def folds_record(ranking: HardRanking) -> dict[str, Any]:
    """The ranking as JSON: its source, and its folds per seed ("default": a seed the
    reference lacks)."""

    def rows(folds: tuple[Fold, ...]) -> list[dict[str, Any]]:
        return [{"rank": f.rank.tolist(), "score": f.score} for f in folds]

    per_seed = {str(s): rows(f) for s, f in ranking.folds.items()}
    return {"source": ranking.source, "default": rows(ranking.default)} | per_seed


def ranking_of(record: Mapping[str, Any]) -> HardRanking:
    """The report's ranking rebuilt from its record (``folds_record``, results.json's
    ``ranking_folds``)."""

    def folds(rows: list[dict[str, Any]]) -> tuple[Fold, ...]:
        return tuple(Fold(np.asarray(r["rank"], dtype=float), r["score"]) for r in rows)

    per_seed = {int(s): folds(r) for s, r in record.items() if s not in ("source", "default")}
    return HardRanking(record["source"], per_seed, folds(record["default"]))


def hardest_first(g: Mapping[str, list[int]]) -> list[int]:
    """Class indices hardest first by the report's display groups (``display_groups``:
    never the test accuracies a table shows, unless the ranking says so)."""
    return [*g["hard"][::-1], *g["medium"][::-1], *g["easy"][::-1]]


def report_ranking(by_method: dict[str, list[RunResult]], reference: str) -> HardRanking:
    """The hard-class ranking every run supports (``mr2.metrics.hard.choose_ranking``);
    test halves only pair up when every run's test labels are in one order."""
    runs = [r for rs in by_method.values() for r in rs]
    digests = {r.test.labels_sha256 for r in runs}
    return choose_ranking(
        {r.seed: evidence(r) for r in by_method[reference]},
        [evidence(r) for r in runs],
        halves_pair=len(digests) == 1 and None not in digests,
    )
