"""Reports from saved runs: ``build(paths, out_dir)`` writes report.md, results.json,
per_class.csv and the PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mr2.engine.checkpoint import save_json, save_text
from mr2.report import plots, tables
from mr2.report.results import collect, summarize


def build(paths: list[str | Path], out_dir: str | Path, reference: str = "ce") -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(collect(paths), reference=reference)
    save_json(summary, out / "results.json")
    save_text(tables.per_class_csv(summary), out / "per_class.csv")
    figs = [
        plots.sorted_accuracy(summary, out / "sorted_accuracy.png"),
        plots.gain_over_reference(summary, out / "gain_over_reference.png"),
    ]
    table = tables.summary_table(summary)
    n_runs = len(summary["runs"])
    md = [
        f"# Class-wise comparison on {summary['dataset']}",
        "",
        f"{n_runs} runs. Test accuracy in %, mean ± std over seeds. Easy / medium / hard are "
        f"thirds of the classes ranked by {summary['reference']}'s mean per-class accuracy. "
        "Hard gain: mean over seeds of the hard-third difference, with the sign-flip p-value "
        "over seeds and the sign-test p-value over hard classes; * = gain above 2 standard "
        "errors of the per-seed differences.",
        "",
        table,
        "",
        "## Per-class accuracy (hardest first)",
        "",
        tables.per_class_table(summary),
        "",
        "## Plots",
        "",
        *[f"![{f.stem}]({f.name})" for f in figs],
        "",
        "Files: results.json (schema in mr2/report/results.py), per_class.csv.",
        "",
    ]
    save_text("\n".join(md), out / "report.md")
    return {"summary": summary, "table": table, "report": out / "report.md", "plots": figs}


__all__ = ["build", "collect", "summarize"]
