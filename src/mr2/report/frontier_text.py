"""The report's section on the accuracy a user can afford (``mr2.report.frontier``): the
matched-accuracy table and the sentence that answers the question in words."""

from __future__ import annotations

from mr2.report import marks
from mr2.report.summary import Frontiers, Gain, MatchedRow
from mr2.report.tables import cell


def _gain(g: Gain, star: bool = False) -> str:
    if g.n < 2:
        return f"{100 * g.mean:+.2f} (1 seed)"
    tied = f", {g.ties} tied" if g.ties else ""
    seeds = f"{g.up}/{g.n} up{tied}, p {g.p:.3g}, Holm {g.p_holm:.3g}"
    text = f"{100 * g.mean:+.2f} ± {100 * g.se:.2f} ({seeds})"
    return text + (" *" if star else "")


def _gains(r: MatchedRow, reference: str, star: bool) -> str:
    """The two gain cells; the reference's own rows: what the fix gives, no contrast."""
    if r.method == reference:
        return " | ".join(["the fix itself" if r.method_offsets else "reference"] * 2)
    return f"{_gain(r.worst_gain, star)} | {_gain(r.hard_gain)}"


def _name(r: MatchedRow) -> str:
    return r.method + (" + offsets" if r.method_offsets else "")


def table(f: Frontiers, found: list[marks.Mark]) -> str:
    ref = cell(f.reference)
    lines = [
        f"| method | offsets | accuracy level (on validation) | test overall: method / {ref} "
        f"| test worst class | test hard third | worst class vs {ref} | hard third vs {ref} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    starred = {(m.method, m.what) for m in found if m.kind == marks.KINDS[1]}
    for r in f.matched:
        arms = (
            f"{100 * r.mean('method', 'overall'):.2f} / {100 * r.mean('reference', 'overall'):.2f}"
        )
        level = r.level + (f" ({r.note})" if r.note else "")
        worst, hard = (100 * r.mean("method", key) for key in ("worst", "hard"))
        lines.append(
            f"| {cell(r.method)} | {'yes' if r.method_offsets else 'no'} | {cell(level)} | "
            f"{arms} | {worst:.2f} | {hard:.2f} | "
            f"{_gains(r, f.reference, (_name(r), r.level) in starred)} |"
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
        f"{m.method} at {m.what}: {100 * gains[m.method, m.what].worst_gain.mean:+.2f} points"
        for m in winners
    )
    lead = f"Beyond {ref} + post-hoc offsets at matched accuracy, the worst class is lifted by"
    return f"{lead} {said}.{fix}"


def _fix_statement(f: Frontiers) -> str:
    """What offsets alone give the reference: at its own validation accuracy, and half a
    point below it (test numbers, means over seeds)."""
    ref = f.reference
    alone = next((r for r in f.matched if r.method == ref and not r.method_offsets), None)
    rows = [r for r in f.matched if r.method == ref and r.method_offsets]
    if alone is None or len(rows) < 2:
        return ""
    at, half = rows[0], rows[1]  # DROPS: 0, then 0.5 point below
    before, after = alone.mean("method", "overall"), half.mean("method", "overall")
    return (
        f" Offsets alone move {ref}'s worst class from {100 * alone.mean('method', 'worst'):.2f} "
        f"to {100 * at.mean('method', 'worst'):.2f} at its own validation accuracy, and to "
        f"{100 * half.mean('method', 'worst'):.2f} half a point below it (test overall "
        f"{100 * before:.2f} -> {100 * after:.2f})."
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
        "validation accuracy reaches the level) and scored on test. With offsets, both arms "
        "are fit by the same fitter at the lower of their two validation accuracies (less the "
        "drop), a level that treats them alike; a method without offsets is compared with "
        f"{cell(f.reference)} + offsets at its own validation accuracy. "
        "Gains in points: mean ± SE over seeds, exact sign-flip p, Holm over the table's rows "
        "(descriptive); " + marks.legend(),
        "",
        table(f, found),
        "",
    ]
