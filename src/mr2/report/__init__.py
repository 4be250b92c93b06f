"""Reports from saved runs: ``build(paths, out_dir)`` writes report.md, results.json,
per_class.csv and the PNG plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mr2.io import save_json, save_text
from mr2.report import diagnostics, plots, tables
from mr2.report.predictions import record_predictions
from mr2.report.record import record_run
from mr2.report.results import ReportSummary, collect, failures, selections, summarize
from mr2.report.wise import summarize_wise, wise_report_table


@dataclass(frozen=True)
class Report:
    """What ``build`` wrote: the summary (results.json), the main table (markdown), the
    report's path and the plots'."""

    summary: ReportSummary
    table: str
    path: Path
    plots: list[Path]


def build(paths: list[str | Path], out_dir: str | Path, reference: str = "ce") -> Report:
    """Collect the runs under ``paths`` (refusing runs that are not seeds of one setting),
    summarise them against ``reference`` and write report.md, results.json, per_class.csv
    and the plots to ``out_dir``."""
    summary = summarize(collect(paths), reference=reference)  # before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary["tuning"] = selections(paths)
    summary["missing"] = failures(paths)
    wise = summarize_wise(summary)
    if wise:
        summary["wise"] = wise
    save_json(summary, out / "results.json")
    save_text(tables.per_class_csv(summary), out / "per_class.csv")
    candidates = [
        plots.sorted_accuracy(summary, out / "sorted_accuracy.png"),
        plots.gain_over_reference(summary, out / "gain_over_reference.png"),
        plots.spread_vs_accuracy(summary, out / "spread_vs_accuracy.png"),
        plots.margins_over_epochs(summary, out / "margins_over_epochs.png"),
    ]
    figs = [f for f in candidates if f is not None]
    table = tables.summary_table(summary)
    save_text("\n".join(_markdown(summary, table, figs)), out / "report.md")
    return Report(summary, table, out / "report.md", figs)


def _markdown(summary: ReportSummary, table: str, figs: list[Path]) -> list[str]:
    ref = summary["reference"]
    return [
        f"# Class-wise comparison on {summary['dataset']}",
        "",
        f"{len(summary['runs'])} runs. Test accuracy in %, mean ± std over seeds. Easy / medium "
        f"/ hard are thirds of the classes ranked by {ref}'s mean per-class accuracy. Hard "
        "gain: mean over seeds of the hard-third difference, with the sign-flip p-value over "
        "seeds and the sign-test p-value over hard classes; * = gain above 2 standard errors "
        "of the per-seed differences.",
        "",
        table,
        "",
        *_missing(summary["missing"]),
        "## Per-class accuracy (hardest first)",
        "",
        tables.per_class_table(summary),
        "",
        *_tuning(summary["tuning"]),
        *_wise(summary.get("wise"), ref),
        "## Diagnostics",
        "",
        "Feature spread ||s_k||^2 (test features of the final models) against per-class "
        "accuracy, correlated over classes:",
        "",
        diagnostics.spread_table(summary),
        "",
        f"What the hard classes are mistaken for ({ref}'s top confusions; % of the class's "
        "test samples, all seeds pooled):",
        "",
        diagnostics.confusion_summary(summary),
        "",
        "## Plots",
        "",
        *[f"![{f.stem}]({f.name})" for f in figs],
        "",
        "Files: results.json (schema in mr2/report/results.py), per_class.csv.",
        "",
    ]


def _tuning(tuned: list[dict[str, Any]]) -> list[str]:
    if not tuned:
        return []
    return [
        "## Settings chosen on validation",
        "",
        f"Each grid point trained on the tuning seeds and scored by {tuned[0]['metric']}; "
        "the test numbers above are for the selected settings only.",
        "",
        tables.grid_table(tuned),
        "",
    ]


def _missing(missing: list[dict[str, Any]]) -> list[str]:
    if not missing:
        return []
    return [
        "## Missing runs",
        "",
        "These runs failed (each RUN/failed.json holds the error, traceback and log tail); "
        "the tables above average only the runs that finished. Re-run the same command to "
        "retry them.",
        "",
        *[f"- {m['run']} ({m['run_dir']}): {m['error']}" for m in missing],
        "",
    ]


def _wise(wise: dict[str, Any] | None, ref: str) -> list[str]:
    if not wise:
        return []
    return [
        "## WiSE-FT: zero-shot / fine-tuned interpolation",
        "",
        "theta(alpha) = (1 - alpha) theta_zero-shot + alpha theta_fine-tuned; test "
        f"accuracy in %, mean ± std over seeds, hard = {ref}'s hard third; the alpha "
        "of each seed is selected on validation mean-class accuracy.",
        "",
        wise_report_table(wise),
        "",
    ]


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
]
