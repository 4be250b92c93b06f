"""Every mark (``*``) a report shows, held as one family: at most three primary contrasts
per method against the reference (the hard-third gain; the worst class against the
reference + offsets, alone at the method's own accuracy and with offsets on both arms at
the lower of the two accuracies, where the fits reached it: ``MatchedRow.primary``),
Holm-adjusted together, so a
method identical to the reference is marked in at most ``ALPHA`` of reports. Every other
p-value a report prints is descriptive. A small family is what lets 10 seeds (smallest
sign-flip p 2 / 2^10) mark anything at all."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mr2.metrics.paired import holm
from mr2.report.summary import Frontiers, ReportSummary

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
            if r.primary and r.method != fronts.reference and r.worst_gain.n > 1:
                name = r.method + (" + offsets" if r.method_offsets else "")
                found.append((Mark(KINDS[1], name, r.level, r.worst_gain.p), r.worst_gain.mean))
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
        "the worst class alone at its own accuracy and with offsets on both arms at the lower "
        "of the two accuracies, where the fits reached it (within 0.1 point of validation "
        "accuracy); Holm over all "
        f"of them together holds a {100 * ALPHA:.0f} % family-wise false-positive rate. Every "
        "other p-value is descriptive."
    )
