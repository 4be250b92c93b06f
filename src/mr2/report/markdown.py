"""The report's markdown page (report.md): its statements (how the classes were ranked,
what the seeds allow, ties at the hard third's cut) and its sections, from the summary and
the tables (``mr2.report.tables``), the frontier section (``mr2.report.frontier_text``) and
the plots' files that ``mr2.report.build`` made."""

from __future__ import annotations

from pathlib import Path

from mr2.metrics import min_sign_flip_p
from mr2.records.selection import Selection
from mr2.report import diagnostics, marks, tables
from mr2.report.summary import MissingRun, ReportSummary, WiseMethod
from mr2.report.wise import wise_report_table


def seeds_statement(summary: ReportSummary) -> str:
    """What the sign-flip test can show with the seeds at hand."""
    compared = [b.vs_reference for b in summary.compared() if b.vs_reference]
    n = max((len(vs.hard_gain_per_seed) for vs in compared), default=0)
    if n < 2:
        return "One paired seed: no p-value can be computed; differences are single values."
    floor = min_sign_flip_p(n)
    if floor >= 0.05:
        return (
            f"With {n} paired seeds the sign-flip test cannot give p below {floor:.4g}: a p at "
            "that floor means every seed moved the same way, not significance at 0.05, "
            "which needs 6 paired seeds or more."
        )
    return f"With {n} paired seeds the smallest p the sign-flip test can give is {floor:.4g}."


def ranking_statement(summary: ReportSummary) -> str:
    ref = summary.reference
    text = (
        f"Easy / medium / hard are thirds of the classes, {summary.ranking} ({ref}; "
        "seed s is ranked on the reference's other seeds, see mr2.metrics.hard)."
    )
    if not summary.ranking_unbiased:
        text += (
            " **This ranking is not free of selection on the scored data** (the runs lack "
            "validation scores or test halves): read the hard-third levels with that in mind."
        )
    return text + tied_cut(summary)


def tied_cut(summary: ReportSummary) -> str:
    """A warning when ties on the reference's validation accuracy decide which classes are
    the hard third (e.g. 8 of 10 classes at 100 %: the "hard" third is then arbitrary)."""
    val = summary.methods[summary.reference].val_per_class_mean
    if not val or len(val) < 3:
        return ""
    ranked = sorted(val)
    k_hard = max(1, len(val) // 3)
    cut = ranked[k_hard - 1]
    tied = sum(v == cut for v in val)
    if ranked[k_hard] != cut:  # the cut falls between two different accuracies
        return ""
    return (
        f" **Ties decide the hard third**: {tied} classes share {summary.reference}'s "
        f"validation accuracy {100 * cut:.1f} % where the hard third is cut, so which of them "
        "count as hard is arbitrary: read its level and gains with that in mind."
    )


def document(
    summary: ReportSummary,
    table: str,
    figs: list[Path],
    warnings: list[str],
    afford: list[str],
) -> list[str]:
    ref = summary.reference
    return [
        f"# Class-wise comparison on {summary.dataset}",
        "",
        f"{len(summary.runs)} runs. Test accuracy in %, mean ± std over seeds. "
        + ranking_statement(summary)
        + " Worst class and max-min are each run's own. Hard and worst-class gains: mean "
        "± standard error of the per-seed paired differences, the seeds where it is "
        "positive, the sign-flip p-value over seeds and the smallest p it can reach; "
        + marks.legend()
        + " "
        + seeds_statement(summary),
        "",
        table,
        "",
        *_missing(summary.missing),
        *_starting_weights(summary),
        *_outsiders(summary.not_compared),
        *_warnings(warnings),
        *afford,
        "## Per-class accuracy (hardest first)",
        "",
        tables.per_class_table(summary),
        "",
        *_class_gains(summary),
        *_tuning(summary.tuning),
        *_wise(summary.wise, ref),
        *_diagnostics(summary),
        "## Plots",
        "",
        *[f"![{f.stem}]({f.name})" for f in figs],
        "",
        "Files: results.json (schema in mr2/report/results.py), per_class.csv.",
        "",
    ]


def _diagnostics(summary: ReportSummary) -> list[str]:
    return [
        "## Diagnostics",
        "",
        "Feature spread ||s_k||^2 (test features of the final models) against per-class "
        "accuracy, correlated over classes:",
        "",
        diagnostics.spread_table(summary),
        "",
        *diagnostics.margin_difficulty(summary),
        f"What the hard classes are mistaken for ({summary.reference}'s top confusions; % of "
        "the class's test samples, all seeds pooled):",
        "",
        diagnostics.confusion_summary(summary),
        "",
    ]


def _class_gains(summary: ReportSummary) -> list[str]:
    if not summary.compared():
        return []
    return [
        f"## Per-class gains over {summary.reference}",
        "",
        "Mean paired difference in points over seeds, every class (none is picked), with "
        "Bonferroni simultaneous 95 % t-intervals over the K classes and Holm-adjusted "
        "paired t-test p-values (family-wise error over the classes; descriptive, not "
        "marked). Two seeds or more.",
        "",
        tables.class_gain_table(summary),
        "",
    ]


def _starting_weights(summary: ReportSummary) -> list[str]:
    """Where each method's models started, when any did from pre-trained weights."""
    if all(r.weights is None or r.weights.kind == "random" for r in summary.runs):
        return []
    lines = ["## Starting weights", ""]
    for method in summary.methods:
        seen: dict[str, list[int]] = {}
        for r in (r for r in summary.runs if r.method == method):
            w = r.weights
            text = (
                "not recorded"
                if w is None
                else f"file {w.name} (sha256 {w.sha256[:12]})"
                if w.kind == "file" and w.sha256
                else f"{w.kind} {w.name}".strip()
            )
            seen.setdefault(text, []).append(r.seed)
        parts = [f"{text} (seeds {', '.join(map(str, sorted(s)))})" for text, s in seen.items()]
        lines.append(f"- {tables.cell(method)}: {'; '.join(parts)}")
    return [*lines, ""]


def _warnings(found: list[str]) -> list[str]:
    if not found:
        return []
    return ["## Warnings", "", *[f"- {f}" for f in found], ""]


def _tuning(tuned: list[Selection]) -> list[str]:
    if not tuned:
        return []
    return [
        "## Settings chosen on validation",
        "",
        f"Each grid point trained on the tuning seeds and scored by {tuned[0].metric}; "
        "the test numbers above are for the selected settings only.",
        "",
        tables.grid_table(tuned),
        "",
    ]


def _listed(title: str, intro: str, lines: list[str]) -> list[str]:
    """A section that lists runs, or nothing when there are none."""
    return [f"## {title}", "", intro, "", *lines, ""] if lines else []


def _missing(missing: list[MissingRun]) -> list[str]:
    return _listed(
        "Missing runs",
        "These runs failed (each RUN/failed.json holds the error, traceback and log tail) or "
        "did not finish; the tables above average only the runs that finished. Re-run the "
        "same command to retry them.",
        [f"- {m.run} ({m.run_dir}): {m.error}" for m in missing],
    )


def _outsiders(folders: list[str]) -> list[str]:
    return _listed(
        "Not part of this comparison",
        "These runs lie under the comparison folder but are not among the runs its "
        "comparison.json lists (e.g. methods a later `mr2 compare --overwrite` no longer "
        "compares, trained with other settings): left out of every table above.",
        [f"- {f}" for f in folders],
    )


def _wise(wise: dict[str, WiseMethod], ref: str) -> list[str]:
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
