"""The report's section on the accuracy a user can afford (``mr2.report.frontier``): the
matched-accuracy table and the sentence that answers the question in words."""

from __future__ import annotations

from mr2.report import marks
from mr2.report.summary import Frontiers, MatchedRow
from mr2.report.tables import cell


def _gain(g: tuple[float, float, int, int, float, float], star: bool = False) -> str:
    mean, se, up, n, p, p_holm = g
    if p != p and n >= 2:  # the reference + offsets itself: what the fix gives
        return "the fix itself"
    if n < 2:
        return f"{100 * mean:+.2f} (1 seed)"
    text = f"{100 * mean:+.2f} ± {100 * se:.2f} ({up}/{n} up, p {p:.3g}, Holm {p_holm:.3g})"
    return text + (" *" if star else "")


def _name(r: MatchedRow) -> str:
    return r.method + (" + offsets" if r.offsets else "")


def table(f: Frontiers, found: list[marks.Mark]) -> str:
    ref = cell(f.reference)
    lines = [
        f"| method | offsets | accuracy level (on validation) | test overall | test worst class "
        f"| test hard third | worst class vs {ref} + offsets | hard third vs {ref} + offsets |",
        "|---|---|---|---|---|---|---|---|",
    ]
    starred = {(m.method, m.what) for m in found if m.kind == marks.KINDS[1]}
    for r in f.matched:
        lines.append(
            f"| {cell(r.method)} | {'yes' if r.offsets else 'no'} | {cell(r.level)} | "
            f"{100 * r.overall:.2f} | {100 * r.worst:.2f} | {100 * r.hard:.2f} | "
            f"{_gain(r.worst_gain, (_name(r), r.level) in starred)} | {_gain(r.hard_gain)} |"
        )
    return "\n".join(lines)


def sentence(f: Frontiers, found: list[marks.Mark]) -> str:
    """Which method lifts the worst class beyond the reference + offsets at matched
    accuracy (Holm-adjusted p < 0.05), in words."""
    ref = f.reference
    fix = _fix_statement(f)
    winners = [m for m in found if m.kind == marks.KINDS[1]]
    if not winners:
        n = sum(r.method != ref and r.primary for r in f.matched)
        return (
            f"No method lifts the worst class beyond {ref} + post-hoc offsets at matched "
            f"accuracy (none of its {n} primary contrasts marked: Holm-adjusted p < "
            f"{marks.ALPHA} over the report's family).{fix}"
        )
    gains = {(_name(r), r.level): r for r in f.matched}
    said = "; ".join(
        f"{m.method} at {m.what}: {100 * gains[m.method, m.what].worst_gain[0]:+.2f} points"
        for m in winners
    )
    lead = f"Beyond {ref} + post-hoc offsets at matched accuracy, the worst class is lifted by"
    return f"{lead} {said}.{fix}"


def _fix_statement(f: Frontiers) -> str:
    """What offsets alone give the reference: at its own validation accuracy, and half a
    point below it (test numbers, means over seeds)."""
    ref = f.reference
    alone = next((r for r in f.matched if r.method == ref and not r.offsets), None)
    rows = [r for r in f.matched if r.method == ref and r.offsets]
    if alone is None or len(rows) < 2:
        return ""
    at, half = rows[0], rows[1]  # DROPS: 0, then 0.5 point below
    return (
        f" Offsets alone move {ref}'s worst class from {100 * alone.worst:.2f} to "
        f"{100 * at.worst:.2f} at its own validation accuracy, and to {100 * half.worst:.2f} "
        f"half a point below it (test overall {100 * alone.overall:.2f} -> "
        f"{100 * half.overall:.2f})."
    )


def section(f: Frontiers | None, found: list[marks.Mark]) -> list[str]:
    if f is None:
        return []
    head = ["## At the accuracy you can afford: against post-hoc class offsets", ""]
    if f.lacking:
        return [
            *head,
            f"Not computed: {len(f.lacking)} run(s) kept no validation and test logits (e.g. "
            f"{f.lacking[0]}); rerun them with mr2 >= 0.2 or record them with both "
            "(record_run(..., logits=..., val=(labels, logits))).",
            "",
        ]
    return [
        *head,
        sentence(f, found),
        "",
        "Offsets are fit on each seed's validation logits (the best worst class whose "
        "validation accuracy reaches the level) and scored on test; methods without offsets "
        f"are compared with {cell(f.reference)} + offsets at their own validation accuracy. "
        "Gains in points: mean ± SE over seeds, exact sign-flip p, Holm over the table's rows "
        "(descriptive); " + marks.legend(),
        "",
        table(f, found),
        "",
    ]
