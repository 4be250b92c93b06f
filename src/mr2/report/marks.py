"""Every mark a report shows, held as one family (issue 34): a method identical to the
reference gets no mark of any kind in at least 95 % of reports.

A report marks four kinds of contrast, each in its own place: the hard-third gain of a
method (``*`` in the summary table), a per-class gain (``*`` in the per-class gain table),
and the worst-class and hard-third gains at matched overall accuracy against the reference
+ post-hoc offsets (``*`` in that table; the worst class also in its sentence). The 5 % is
split evenly over the four kinds (Bonferroni: 1.25 % each) and, within a kind, Holm's
adjustment runs over every contrast of that kind: every method, and for per-class gains
every class (the per-class p are Holm-adjusted over classes per method, then Bonferroni over
methods). So the chance that a report shows any mark when no method differs from the
reference is at most 5 %, whatever the number of methods, classes or levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mr2.metrics.paired import holm
from mr2.report.records import Frontiers, MatchedRow, ReportSummary

ALPHA = 0.05  # the report's family-wise false-positive rate over all its marks
KINDS = ("hard third", "per class", "matched worst class", "matched hard third")
LEVEL = ALPHA / len(KINDS)  # each kind's share


@dataclass(frozen=True)
class Mark:
    """One marked contrast: its kind (one of ``KINDS``), the method, what was compared
    (a class name or an accuracy level) and the adjusted p below ``LEVEL``."""

    kind: str
    method: str
    what: str
    p_adjusted: float


def hard_third(summary: ReportSummary) -> list[Mark]:
    """Methods whose hard-third gain is positive with the sign-flip p Holm-adjusted over
    every compared method below ``LEVEL``."""
    tested = [
        (m, b.vs_reference) for m, b in summary.methods.items()
        if b.vs_reference and len(b.vs_reference.hard_gain_per_seed) > 1
    ]  # fmt: skip
    adjusted = holm([vs.p_seeds for _, vs in tested]) if tested else np.array([])
    return [
        Mark("hard third", m, "hard third", float(p))
        for (m, vs), p in zip(tested, adjusted, strict=True)
        if p < LEVEL and vs.group_gain["hard"] > 0
    ]


def per_class(summary: ReportSummary) -> list[Mark]:
    """Per-class gains or losses whose Holm-over-classes p, times the number of compared
    methods (Bonferroni), is below ``LEVEL``."""
    compared = {m: b.vs_reference for m, b in summary.methods.items() if b.vs_reference}
    found = []
    for method, vs in compared.items():
        for c, p in enumerate(vs.p_holm):
            adjusted = min(1.0, p * len(compared))
            if adjusted < LEVEL:  # NaN (one seed) compares False
                found.append(Mark("per class", method, summary.class_names[c], adjusted))
    return found


def _matched(
    rows: list[MatchedRow], kind: str, gain_of: Callable[[MatchedRow], tuple[float, ...]]
) -> list[Mark]:
    return [
        Mark(kind, r.method + (" + offsets" if r.offsets else ""), r.level, gain_of(r)[5])
        for r in rows
        if gain_of(r)[5] < LEVEL and gain_of(r)[0] > 0
    ]


def matched(fronts: Frontiers | None) -> list[Mark]:
    """Rows of the matched-accuracy table whose worst-class or hard-third gain over the
    reference + offsets is positive with a Holm-adjusted p (over the table's rows) below
    ``LEVEL``."""
    if fronts is None or fronts.lacking:
        return []
    rows = [r for r in fronts.matched if r.method != fronts.reference]
    return _matched(rows, KINDS[2], lambda r: r.worst_gain) + _matched(
        rows, KINDS[3], lambda r: r.hard_gain
    )


def marks(summary: ReportSummary, fronts: Frontiers | None) -> list[Mark]:
    """Every mark the report shows."""
    return hard_third(summary) + per_class(summary) + matched(fronts)


def legend() -> str:
    return (
        f"`*`: a mark. The report's marks hold a {100 * ALPHA:.0f} % family-wise "
        f"false-positive rate together: {100 * LEVEL:.2f} % for each of its {len(KINDS)} "
        f"kinds ({', '.join(KINDS)}), Holm-adjusted within a kind."
    )
