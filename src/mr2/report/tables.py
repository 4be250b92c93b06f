"""Markdown tables and the per-class CSV of a summary (see results.py)."""

from __future__ import annotations

import csv
import io
from typing import Any

from mr2.report.results import ReportSummary

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


def _pct(stat: dict[str, float] | None) -> str:
    """Mean ± std over seeds in %; one seed shows the value alone (no spread to show)."""
    if stat is None or stat["mean"] != stat["mean"]:
        return "n/a"
    if stat.get("n", 2) < 2:
        return f"{100 * stat['mean']:.2f}"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def _p(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"


def hard_gain_cell(vs: dict[str, Any] | None) -> str:
    """The hard-third gain over the reference, with p-values only where they exist (>= 2
    paired seeds; a hard third with classes in it)."""
    if vs is None:
        return "reference"
    gain = vs["group_gain"]["hard"]
    if gain != gain:
        return "n/a (no hard class)"
    if len(vs["hard_gain_per_seed"]) < 2:
        return f"{100 * gain:+.2f} (1 seed: no p-value)"
    mark = " *" if vs["exceeds_seed_noise"] else ""
    return f"{100 * gain:+.2f} ({_p(vs['p_seeds'])}, {_p(vs['p_classes'])}){mark}"


def summary_table(summary: ReportSummary) -> str:
    """Methods x statistics, mean ± std over seeds (accuracies in %)."""
    head = (
        "| method | seeds | " + " | ".join(c for _, c in COLUMNS) + " | hard gain vs "
        f"{summary['reference']} (p seeds, p classes) |"
    )
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for m, body in summary["methods"].items():
        cells = [_pct(body["summary"].get(k)) for k, _ in COLUMNS]
        gain = hard_gain_cell(body["vs_reference"])
        failed = sum(1 for x in summary.get("missing", []) if x["method"] == m)
        seeds = f"{len(body['seeds'])}" + (f" ({failed} failed)" if failed else "")
        lines.append(f"| {m} | {seeds} | " + " | ".join(cells) + f" | {gain} |")
    return "\n".join(lines)


def per_class_table(summary: ReportSummary) -> str:
    """Classes (hardest first by the reference) x methods: mean per-class accuracy in %."""
    names = summary["class_names"]
    methods = list(summary["methods"])
    ref = summary["methods"][summary["reference"]]["per_class_mean"]
    order = sorted(range(len(names)), key=lambda c: ref[c])
    lines = ["| class | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 1)]
    for c in order:
        cells = [f"{100 * summary['methods'][m]['per_class_mean'][c]:.1f}" for m in methods]
        lines.append(f"| {names[c]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_class_csv(summary: ReportSummary) -> str:
    """One row per (method, seed, class): method, seed, class, class_name, accuracy, support."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["method", "seed", "class", "class_name", "accuracy", "support"])
    names = summary["class_names"]
    for run in summary["runs"]:
        for c, (a, n) in enumerate(zip(run["per_class"], run["support"], strict=True)):
            w.writerow([run["method"], run["seed"], c, names[c], a, n])
    return out.getvalue()


def grid_table(selections: list[dict[str, Any]]) -> str:
    """Every grid point's validation score; the selected one marked."""
    lines = [
        "| method | setting | validation score (per tuning seed) | selected |",
        "|---|---|---|---|",
    ]
    for sel in selections:
        for row in sel["grid"]:
            per_seed = ", ".join(f"{100 * v:.2f}" for v in row["val_scores"])
            mark = "yes" if row["point"] == sel["selected"] else ""
            lines.append(
                f"| {sel['method']} | {row['label']} | {100 * row['val_score']:.2f} "
                f"({per_seed}) | {mark} |"
            )
    return "\n".join(lines)
