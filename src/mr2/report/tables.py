"""Markdown tables and the per-class CSV of a summary (see results.py)."""

from __future__ import annotations

import csv
import io
from typing import Any

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
    if stat is None:
        return "n/a"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def summary_table(summary: dict[str, Any]) -> str:
    """Methods x statistics, mean ± std over seeds (accuracies in %)."""
    head = (
        "| method | seeds | " + " | ".join(c for _, c in COLUMNS) + " | hard gain vs "
        f"{summary['reference']} (p seeds, p classes) |"
    )
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for m, body in summary["methods"].items():
        cells = [_pct(body["summary"].get(k)) for k, _ in COLUMNS]
        vs = body["vs_reference"]
        gain = (
            "reference"
            if vs is None
            else (
                f"{100 * vs['group_gain']['hard']:+.2f} "
                f"({vs['p_seeds']:.2f}, {vs['p_classes']:.2f})"
                + (" *" if vs["exceeds_seed_noise"] else "")
            )
        )
        lines.append(f"| {m} | {len(body['seeds'])} | " + " | ".join(cells) + f" | {gain} |")
    return "\n".join(lines)


def per_class_table(summary: dict[str, Any]) -> str:
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


def per_class_csv(summary: dict[str, Any]) -> str:
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
