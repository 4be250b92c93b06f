"""Markdown tables and the per-class CSV of a summary (see results.py)."""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from mr2.metrics import MeanStd, PairedComparison
from mr2.records.selection import Selection
from mr2.report.ranking import hardest_first
from mr2.report.summary import ReportSummary

COLUMNS = [
    ("overall", "overall"),
    ("easy", "easy"),
    ("medium", "medium"),
    ("hard", "hard"),
    ("worst_class", "worst class"),
    ("worst_fraction_mean", "worst 10%"),
    ("std", "std"),
    ("gap", "max-min"),
]


def shown_columns(num_classes: int) -> list[tuple[str, str]]:
    """``COLUMNS`` without those that repeat another at this class count: the worst 10 %
    is the worst class alone when ceil(0.1 K) = 1 (K <= 10)."""
    if math.ceil(0.1 * num_classes) <= 1:
        return [c for c in COLUMNS if c[0] != "worst_fraction_mean"]
    return list(COLUMNS)


def _pct(stat: MeanStd | None) -> str:
    """Mean ± std over seeds in %; one seed shows the value alone (no spread to show)."""
    if stat is None or stat.mean != stat.mean:
        return "n/a"
    if stat.n < 2:
        return f"{100 * stat.mean:.2f}"
    return f"{100 * stat.mean:.2f} ± {100 * stat.std:.2f}"


def _p(value: float) -> str:
    return "n/a" if value != value else f"{value:.3g}"


def _paired(values: list[float], tests: str = "") -> str:
    """Mean ± standard error of per-seed paired differences in points, the seeds up, and
    ``tests`` (the p-values) inside the same brackets."""
    v = 100 * np.asarray(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():+.2f} (1 seed)"
    return (
        f"{v.mean():+.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f} "
        f"({int((v > 0).sum())}/{len(v)} up{tests})"
    )


def hard_gain_cell(vs: PairedComparison | None, mark: bool = False) -> str:
    """The hard-third gain over the reference: mean ± SE of the per-seed differences, seeds
    up, the sign-flip p and the smallest p that test can reach with these seeds; `` *``
    when ``mark`` (``mr2.report.marks``)."""
    if vs is None:
        return "reference"
    gain = vs.group_gain["hard"]
    if gain != gain:
        return "n/a (no hard class)"
    if len(vs.hard_gain_per_seed) < 2:
        return f"{100 * gain:+.2f} (1 seed: no p-value)"
    tests = f", p {_p(vs.p_seeds)}, min {_p(vs.p_seeds_min)}"
    return _paired(vs.hard_gain_per_seed, tests) + (" *" if mark else "")


def worst_gain_cell(vs: PairedComparison | None) -> str:
    if vs is None:
        return "reference"
    return _paired(vs.worst_gain_per_seed)


def cell(name: object) -> str:
    """A name as one Markdown table cell: ``|`` escaped, line breaks as spaces."""
    text = str(name).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines())


def csv_text(name: object) -> str:
    """A name for a CSV cell that a spreadsheet will not run as a formula."""
    text = str(name)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def summary_table(summary: ReportSummary, stars: set[str]) -> str:
    """Methods x statistics, mean ± std over seeds (accuracies in %), and the paired hard
    and worst-class gains over the reference; `` *`` on the hard gain of the methods in
    ``stars`` (the report's marks: ``mr2.report.marks``)."""
    ref = cell(summary.reference)
    columns = shown_columns(len(summary.class_names))
    head = (
        "| method | seeds | " + " | ".join(c for _, c in columns) + f" | hard vs {ref} "
        f"(± SE, seeds up, p, min p) | worst class vs {ref} (± SE) |"
    )
    lines = [head, "|" + "---|" * (len(columns) + 4)]
    for m, body in summary.methods.items():
        cells = [_pct(body.summary.get(k)) for k, _ in columns]
        gain = hard_gain_cell(body.vs_reference, m in stars)
        worst = worst_gain_cell(body.vs_reference)
        missing = sum(1 for x in summary.missing if x.method == m)
        seeds = f"{len(body.seeds)}" + (f" ({missing} missing)" if missing else "")
        lines.append(f"| {cell(m)} | {seeds} | " + " | ".join(cells) + f" | {gain} | {worst} |")
    return "\n".join(lines)


def class_gain_table(summary: ReportSummary) -> str:
    """Per class and method: the mean paired gain over the reference in points with its
    Bonferroni simultaneous 95 % interval and Holm-adjusted p (no class is picked: all K)."""
    names = summary.class_names
    compared = {m: b.vs_reference for m, b in summary.methods.items() if b.vs_reference}
    methods = list(compared)
    lines = [
        "| class | " + " | ".join(map(cell, methods)) + " |",
        "|" + "---|" * (len(methods) + 1),
    ]
    for c, name in enumerate(names):
        cells = []
        for vs in compared.values():
            g, lo, hi, p = vs.gain[c], vs.gain_lower[c], vs.gain_upper[c], vs.p_holm[c]
            cells.append(
                f"{100 * g:+.2f}"
                if lo != lo
                else f"{100 * g:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] p {_p(p)}"
            )
        lines.append(f"| {cell(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_class_table(summary: ReportSummary) -> str:
    """Classes x methods: mean per-class accuracy in %, hardest first as the report ranks
    them (its display ranking, never the test accuracies shown)."""
    names = summary.class_names
    methods = list(summary.methods)
    order = hardest_first(summary.groups)
    lines = [
        "| class | " + " | ".join(map(cell, methods)) + " |",
        "|" + "---|" * (len(methods) + 1),
    ]
    for c in order:
        cells = [f"{100 * summary.methods[m].per_class_mean[c]:.1f}" for m in methods]
        lines.append(f"| {cell(names[c])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_FIELDS = ["method", "seed", "class", "class_name", "accuracy", "support", "val_accuracy"]
CSV_FIELDS += ["test_half_a", "test_half_b"]


def per_class_csv(summary: ReportSummary) -> str:
    """One row per (method, seed, class): method, seed, class, class_name, test accuracy,
    support, validation accuracy and the accuracies on test halves A and B (empty where
    the run has none): everything needed to recompute every table."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    names = summary.class_names
    for run in summary.runs:
        none: list[float | None] = [None] * len(names)
        val: list[float | None] = list(run.val_per_class) if run.val_per_class else none
        stored = run.test_halves
        halves: list[list[float | None]] = [list(h) for h in stored] if stored else [none, none]
        for c, (a, n) in enumerate(zip(run.per_class, run.support, strict=True)):
            row = [csv_text(run.method), run.seed, c, csv_text(names[c]), a, n, val[c]]
            w.writerow([*row, halves[0][c], halves[1][c]])
    return out.getvalue()


def grid_table(selections: list[Selection]) -> str:
    """Every grid point's validation score; the selected one marked."""
    lines = [
        "| method | setting | validation score (per tuning seed) | selected |",
        "|---|---|---|---|",
    ]
    for sel in selections:
        for row in sel.grid:
            per_seed = ", ".join(f"{100 * v:.2f}" for v in row.val_scores)
            mark = "yes" if row.point == sel.selected else ""
            lines.append(
                f"| {sel.method} | {row.label} | {100 * row.val_score:.2f} ({per_seed}) | {mark} |"
            )
    return "\n".join(lines)
