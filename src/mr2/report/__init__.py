"""Reports from saved runs: ``build(paths, out_dir)`` writes report.md, results.json,
per_class.csv and the PNG plots."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mr2 import extras
from mr2.records.storage import save_json, save_text
from mr2.records.typed_json import as_dict
from mr2.report import diagnostics, flags, frontier, frontier_text, markdown, marks, plots, tables
from mr2.report.markdown import tied_cut
from mr2.report.membership import outsiders, unfinished
from mr2.report.own_loop import record_run
from mr2.report.predictions import record_predictions
from mr2.report.results import collect, failures, selections, summarize
from mr2.report.summary import ReportSummary
from mr2.report.wise import summarize_wise


@dataclass(frozen=True)
class Report:
    """What ``build`` wrote: the summary (results.json), the main table (markdown), the
    report's path and the plots', and the notes a reader of the table needs (how the hard
    classes were ranked, what the seeds allow, the warnings)."""

    summary: ReportSummary
    table: str
    path: Path
    plots: list[Path]
    notes: list[str]

    def text(self) -> str:
        """The table with its notes, as the commands print it."""
        return "\n".join([self.table, "", *self.notes])


def build(paths: list[str | Path], out_dir: str | Path, reference: str | None = "ce") -> Report:
    """Collect the runs under ``paths`` (refusing runs that are not seeds of one setting),
    summarise them against ``reference`` and write report.md, results.json, per_class.csv
    and the plots to ``out_dir``."""
    extras.require("report", "a report (its plots and statistics)")  # nothing half-written
    results = collect(paths)
    summary = summarize(results, reference=reference)  # before anything is written
    fronts = frontier.frontiers(results, summary.reference)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    failed = failures(paths)
    summary = replace(
        summary,
        tuning=selections(paths),
        missing=failed + unfinished(paths, {m.run_dir for m in failed}),
        not_compared=outsiders(paths),
        wise=summarize_wise(summary),  # from the runs and the ranking, already there
    )
    matched = [as_dict(r) for r in fronts.matched] if fronts is not None else []
    save_json({**summary.to_dict(), "matched": matched}, out / "results.json")  # the boundary
    save_text(tables.per_class_csv(summary), out / "per_class.csv")
    candidates = [
        plots.sorted_accuracy(summary, out / "sorted_accuracy.png"),
        plots.gain_over_reference(summary, out / "gain_over_reference.png"),
        plots.spread_vs_accuracy(summary, out / "spread_vs_accuracy.png"),
        plots.margins_over_epochs(summary, out / "margins_over_epochs.png"),
        plots.frontier(summary, fronts, out / "frontier.png"),
    ]
    figs = [f for f in candidates if f is not None]
    found = marks.marks(summary, fronts)  # one family: every * of the report
    table = tables.summary_table(summary, {m.method for m in found if m.kind == "hard third"})
    warnings = flags.check(summary)
    body = markdown.document(summary, table, figs, warnings, frontier_text.section(fronts, found))
    save_text("\n".join(body), out / "report.md")
    notes = [markdown.ranking_statement(summary), markdown.seeds_statement(summary), *warnings]
    return Report(summary, table, out / "report.md", figs, notes)


__all__ = [
    "Report",
    "ReportSummary",
    "build",
    "collect",
    "diagnostics",
    "record_predictions",
    "record_run",
    "selections",
    "summarize",
    "tied_cut",
]
