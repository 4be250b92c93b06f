"""Every mark a report shows, held as one family (issue 34): a method identical to the
reference gets no mark of any kind in at least 95 % of reports.

A report marks (``*``) only its primary contrasts, at most three per method against the
reference: the hard-third gain (summary table) and, at matched overall accuracy against the
reference + post-hoc offsets, the worst class of the method with offsets at the reference's
own validation accuracy and of the method alone at its own (the matched-accuracy table and
its sentence), each only where the fits reached that accuracy (within 0.1 point of
validation accuracy on average: ``frontier.MATCH_TOLERANCE``; a method well below the
reference's accuracy is judged at its own, one above it with offsets at the reference's).
Holm's adjustment runs over all of them together, so the chance that a report
shows any mark when no method differs from the reference is at most ``ALPHA``. Every other
p-value it prints (per class, the other accuracy levels, the hard third at matched
accuracy) is descriptive: Holm-adjusted within its table, never marked. A small family is
what lets 10 seeds mark anything: the exact sign-flip test's smallest p is 2 / 2^10, so
Holm over 18 contrasts (6 methods) still marks an effect every seed agrees on, which a
family of every per-class and every level contrast (over 100) never could.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mr2.metrics.paired import holm
from mr2.report.records import Frontiers, ReportSummary

ALPHA = 0.05  # the report's family-wise false-positive rate over all its marks
KINDS = ("hard third", "matched worst class")


@dataclass(frozen=True)
class Mark:
    """One marked contrast: its kind (one of ``KINDS``), the method (``"m + offsets"`` for
    a method with offsets), what was compared (``"hard third"`` or an accuracy level) and
    its Holm-adjusted p over the report's family (below ``ALPHA``)."""

    kind: str
    method: str
    what: str
    p_adjusted: float


def _family(summary: ReportSummary, fronts: Frontiers | None) -> list[tuple[Mark, float]]:
    """The primary contrasts as (mark with the raw p, mean gain)."""
    found = []
    for m, body in summary.methods.items():
        vs = body.vs_reference
        if vs is not None and len(vs.hard_gain_per_seed) > 1:
            found.append((Mark(KINDS[0], m, "hard third", vs.p_seeds), vs.group_gain["hard"]))
    if fronts is not None and not fronts.lacking:
        for r in fronts.matched:
            if r.primary and r.method != fronts.reference and r.worst_gain[3] > 1:
                name = r.method + (" + offsets" if r.offsets else "")
                found.append((Mark(KINDS[1], name, r.level, r.worst_gain[4]), r.worst_gain[0]))
    return found


def marks(summary: ReportSummary, fronts: Frontiers | None) -> list[Mark]:
    """Every mark the report shows: the primary contrasts with a positive gain whose p,
    Holm-adjusted over all of them, is below ``ALPHA``."""
    family = _family(summary, fronts)
    adjusted = holm([mark.p_adjusted for mark, _ in family]) if family else np.array([])
    return [
        Mark(mark.kind, mark.method, mark.what, float(p))
        for (mark, gain), p in zip(family, adjusted, strict=True)
        if p < ALPHA and gain > 0
    ]


def legend() -> str:
    return (
        "`*`: a mark. A report marks its primary contrasts only, three per method: the "
        "hard-third gain and, against the reference + post-hoc offsets at matched accuracy, "
        "the worst class with offsets at the reference's accuracy and alone at its own, where "
        "that accuracy was reached (within 0.1 point of validation accuracy); Holm over all "
        f"of them together holds a {100 * ALPHA:.0f} % family-wise false-positive rate. Every "
        "other p-value is descriptive."
    )
