"""``mr2 wise``'s table: one row per alpha, validation and test columns."""

from __future__ import annotations

from mr2.records.wise import WiseResult


def wise_table(result: WiseResult) -> str:
    lines = [
        "| alpha | val mean-class | test overall | test mean-class | test worst | test hard |",
        "|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        if r.test is None:  # a record without test scores: nothing to show for that alpha
            continue
        v = f"{100 * r.val.summary['mean_class']:.2f}" if r.val else "-"
        t = r.test.summary
        mark = " (selected)" if r.alpha == result.selected_alpha else ""
        lines.append(
            f"| {r.alpha:g}{mark} | {v} | {100 * r.test.overall:.2f} | "
            f"{100 * t['mean_class']:.2f} | {100 * t['worst_class']:.2f} | {100 * t['hard']:.2f} |"
        )
    return "\n".join(lines)
