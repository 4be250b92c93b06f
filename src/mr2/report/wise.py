"""WiSE-FT in the comparison report: every run's ``wise.json`` (written by ``mr2 wise`` or by
``compare.wise_alphas``), summarised per method and alpha over seeds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mr2.metrics import disparity_summary, mean_std
from mr2.metrics.hard import ClassEvidence, HardRanking, group_levels
from mr2.records.result import SplitScores
from mr2.records.wise import WiseResult, read_wise
from mr2.report.ranking import ranking_of
from mr2.report.summary import ReportSummary, WiseMethod
from mr2.report.tables import cell

FIELDS = ("overall", "mean_class", "worst_class", "hard")


@dataclass(frozen=True)
class RunWise:
    """A summarised run's WiSE-FT record."""

    method: str
    seed: int
    wise: WiseResult


def collect_wise(summary: ReportSummary) -> list[RunWise]:
    """The WiSE-FT record of every summarised run that has one (type-checked)."""
    found = []
    for run in summary.runs:
        path = Path(run.run_dir or ".") / "wise.json"
        if run.run_dir and path.is_file():
            found.append(RunWise(run.method, run.seed, read_wise(path)))
    return found


def summarize_wise(summary: ReportSummary) -> dict[str, WiseMethod]:
    """Per method and alpha: mean ± std over seeds of test overall, mean-class, worst-class
    and hard accuracy (hard ranked as in the main table, seed by seed: the report's
    ``ranking``), and the validation-selected alpha of each seed."""
    ranking = ranking_of(summary.ranking_folds)
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    selected: dict[str, list[float | None]] = {}
    for record in collect_wise(summary):
        selected.setdefault(record.method, []).append(record.wise.selected_alpha)
        alphas = values.setdefault(record.method, {})
        for row in record.wise.rows:
            if row.test is None:
                continue
            stats = alphas.setdefault(f"{row.alpha:g}", {f: [] for f in FIELDS})
            s = disparity_summary(row.test.per_class)
            stats["overall"].append(row.test.overall)
            stats["mean_class"].append(s.mean_class)
            stats["worst_class"].append(s.worst_class)
            stats["hard"].append(_hard(ranking, row.test, record.seed))
    return {
        method: WiseMethod(
            {
                alpha: {
                    f: mean_std(np.asarray(v) * 100)
                    for f, v in stats.items()
                    if not np.isnan(v).any()  # hard: wise.json of an mr2 without test halves
                }
                for alpha, stats in alphas.items()
            },
            selected[method],
        )
        for method, alphas in values.items()
    }


def _hard(ranking: HardRanking, test: SplitScores, seed: int) -> float:
    if test.halves is None and any(f.score != "test" for f in ranking.folds_for(seed)):
        return float("nan")
    return group_levels(ranking, ClassEvidence.of(test.per_class, halves=test.halves), seed)["hard"]


def wise_report_table(wise: dict[str, WiseMethod]) -> str:
    lines = [
        "| method | alpha | seeds | overall | mean-class | worst class | hard |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, method in wise.items():
        for alpha, stats in method.alphas.items():
            cells = [
                "n/a"
                if f not in stats
                else f"{stats[f].mean:.2f}" + (f" ± {stats[f].std:.2f}" if stats[f].n > 1 else "")
                for f in FIELDS
            ]
            lines.append(
                f"| {cell(name)} | {alpha} | {stats['overall'].n} | " + " | ".join(cells) + " |"
            )
        chosen = ", ".join(f"{a:g}" for a in method.selected if a is not None)
        lines.append(f"| {cell(name)} | selected on validation: {chosen} | | | | | |")
    return "\n".join(lines)
