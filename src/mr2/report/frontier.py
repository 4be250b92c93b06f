"""Which method lifts the worst classes at the overall accuracy one can afford, against the
cheapest fix (the reference + post-hoc class offsets)? From the logits every run keeps:

- **frontiers**: per method and seed, offsets fit on validation for the best worst class at
  ``CURVE_DROPS`` below the run's own validation accuracy (the upper envelope on
  validation: a lower level keeps the better fit of a higher one), scored on test and
  averaged over seeds, with the run without offsets as the first point;
- **matched accuracy**: per method and seed, (a) the method alone against the reference +
  offsets at the method's validation accuracy, and (b) both arms with offsets, fit by the
  same fitter at the **lower of their two validation accuracies** (less ``DROPS``): a level
  that treats both arms alike, so that a method drawn like the reference gains nothing on
  average (a level of one arm's own accuracy gives the other arm slack, and a fitter
  turns slack into worst-class gains). Paired over seeds (test worst class and hard
  third), exact sign-flip p, Holm over the table's rows. Levels and offsets are chosen on
  validation; test is only scored. The hard third is ranked as the report ranks it
  (validation of the reference's other seeds), else on each run's own validation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import Tensor

from mr2.metrics.paired import holm
from mr2.metrics.uncertainty import sign_flip_p_value
from mr2.posthoc import ClassOffsets
from mr2.posthoc.fit import Scores, scores
from mr2.records.logits import RunLogits, has_logits, load_logits, owner_of_result
from mr2.records.result import RunResult
from mr2.report.offsets import hard_sets
from mr2.report.summary import FrontierPoint, Frontiers, Gain, MatchedRow, MatchedSeed

DROPS = (0.0, 0.005, 0.01, 0.02)  # matched levels below the lower of the two accuracies
CURVE_DROPS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05)  # frontier levels, own accuracy
MATCH_TOLERANCE = 0.001  # mean validation shortfall of a matched contrast's fits (0.1 pt)
TIE = 1e-9  # paired differences within this are ties, not gains


class _Run:
    """One run's kept logits as tensors, its hard classes and its fits by level (cached)."""

    def __init__(self, seed: int, kept: RunLogits, hard: list[int]) -> None:
        assert kept.val is not None and kept.test is not None
        self.seed = seed
        self.zv = torch.from_numpy(kept.val.logits.astype(np.float32))
        self.yv = torch.from_numpy(kept.val.labels)
        self.zt = torch.from_numpy(kept.test.logits.astype(np.float32))
        self.yt = torch.from_numpy(kept.test.labels)
        self.hard = hard or None
        self.mask = ClassOffsets(hard_classes=self.hard).hard_mask_for(self.zv, self.yv)
        zero = torch.zeros(self.zv.shape[1])
        self.plain = (
            scores(self.zv, self.yv, zero, self.mask),
            scores(self.zt, self.yt, zero, self.mask),
        )
        self.cache: dict[float, tuple[Scores, Scores, bool, Tensor]] = {}

    def at(self, level: float) -> tuple[Scores, Scores, bool]:
        """(validation, test) scores of the best worst class with validation overall >=
        ``level``, and whether it was reached (where not: the best at the highest accuracy
        offsets reach). A fit climbs from the nearest fit at a higher level (feasible
        here too: an upper envelope on validation), the first one from scratch."""
        key = round(level, 12)
        if key not in self.cache:
            above = [k for k in self.cache if k > key]
            warm = self.cache[min(above)][3] if above else None
            try:
                val, test, b = self._fit(warm, min_overall=level)
                reached = True
            except ValueError:  # above what offsets reach here
                top = self._fit(None, tradeoff=0.0)  # the most accurate offsets
                val, test, b = self._fit(top[2], min_overall=top[0].overall)
                reached = False
            self.cache[key] = (val, test, reached, b)
        return self.cache[key][:3]

    def _fit(
        self, warm: Tensor | None, min_overall: float | None = None, tradeoff: float | None = None
    ) -> tuple[Scores, Scores, Tensor]:
        fitted = ClassOffsets(
            "worst", hard_classes=self.hard, min_overall=min_overall, tradeoff=tradeoff
        )
        fitted.fit(self.zv, self.yv, warm=warm)
        assert fitted.offsets is not None and fitted.after is not None
        return fitted.after, scores(self.zt, self.yt, fitted.offsets, self.mask), fitted.offsets


def _gain(diff: list[float]) -> tuple[float, float, int, int, int, float]:
    d = np.asarray(diff, dtype=float)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    p = sign_flip_p_value(d) if len(d) > 1 else float("nan")
    up, ties = int((d > TIE).sum()), int((np.abs(d) <= TIE).sum())
    return float(d.mean()), se, up, ties, len(d), p


def _curve(seeds: dict[int, _Run]) -> list[FrontierPoint]:
    """No offsets, then the upper envelope on validation at each drop, ordered by test
    overall (means over seeds)."""
    runs = list(seeds.values())
    plain = [r.plain[1] for r in runs]
    points = [_point(None, plain)]
    best: list[tuple[Scores, Scores] | None] = [None] * len(runs)
    for drop in CURVE_DROPS:
        for i, r in enumerate(runs):
            val, test, _ = r.at(r.plain[0].overall - drop)
            if best[i] is None or val.worst > best[i][0].worst:  # type: ignore[index]
                best[i] = (val, test)
        points.append(_point(drop, [b[1] for b in best if b is not None]))
    return [points[0], *sorted(points[1:], key=lambda p: -p.overall)]


def _point(drop: float | None, tests: list[Scores]) -> FrontierPoint:
    return FrontierPoint(
        drop,
        *(float(np.mean([getattr(t, m) for t in tests])) for m in ("overall", "worst", "hard")),
    )


def _seed(seed: int, mine: tuple[Scores, Scores], theirs: tuple[Scores, Scores]) -> MatchedSeed:
    (mv, mt), (rv, rt) = mine, theirs
    return MatchedSeed(
        seed, mv.overall, rv.overall, mt.overall, rt.overall, mt.worst, rt.worst, mt.hard, rt.hard
    )


Pending = tuple[str, bool, bool, str, bool, list[MatchedSeed]]
Level = Callable[[_Run, _Run], float]


def _contrast(
    mine: dict[int, _Run], ref: dict[int, _Run], level: Level, offsets: bool
) -> tuple[list[MatchedSeed], bool, int]:
    """Per seed, the method (with offsets at the level, or alone) against the reference +
    offsets at the level; whether the fits reached it (within ``MATCH_TOLERANCE`` on
    average), and how many fits fell short of it."""
    rows, gap, short = [], 0.0, 0
    for seed, run in mine.items():
        if seed not in ref:
            continue
        at = level(run, ref[seed])
        theirs = ref[seed].at(at)
        gap, short = gap + min(0.0, theirs[0].overall - at), short + (not theirs[2])
        if offsets:
            fitted = run.at(at)
            gap, short = gap + min(0.0, fitted[0].overall - at), short + (not fitted[2])
            rows.append(_seed(seed, fitted[:2], theirs[:2]))
        else:
            rows.append(_seed(seed, run.plain, theirs[:2]))
    return rows, gap >= -MATCH_TOLERANCE * max(len(rows), 1), short


def _matched(runs: dict[str, dict[int, _Run]], reference: str) -> list[MatchedRow]:
    ref = runs[reference]
    pending: list[Pending] = [(reference, False, False, "own accuracy", False, _alone(ref))]
    for drop in DROPS:  # what the fix alone gives the reference
        rows, _, _ = _contrast(ref, ref, partial(_below_own, drop=drop), True)
        pending.append((reference, True, False, f"{reference} - {100 * drop:g} pt", False, rows))
    for method, seeds in runs.items():
        if method == reference:
            continue
        rows, reached, short = _contrast(seeds, ref, partial(_below_own, drop=0.0), False)
        pending.append((method, False, True, _label("own accuracy", short), reached, rows))
        for drop in DROPS:
            rows, reached, short = _contrast(seeds, ref, partial(_below_lower, drop=drop), True)
            label = _label(f"lower of the two - {100 * drop:g} pt", short)
            pending.append((method, True, True, label, drop == 0.0 and reached, rows))
    return _rows(pending, reference)


def _below_own(run: _Run, _: _Run, drop: float) -> float:
    return run.plain[0].overall - drop


def _below_lower(run: _Run, ref: _Run, drop: float) -> float:
    """The level that treats both arms alike: the lower of their validation accuracies."""
    return min(run.plain[0].overall, ref.plain[0].overall) - drop


def _label(text: str, short: int) -> str:
    """The level's label, saying how many fits could not reach it (those sit at the
    highest validation accuracy their offsets reach)."""
    return text if not short else f"{text} ({short} fit(s) below it)"


def _alone(ref: dict[int, _Run]) -> list[MatchedSeed]:
    return [_seed(s, r.plain, r.plain) for s, r in ref.items()]


def _rows(pending: list[Pending], reference: str) -> list[MatchedRow]:
    nan = float("nan")
    gains = {}
    for key in ("worst", "hard"):
        raw = []
        for method, _, _, _, _, rows in pending:
            diff = [
                getattr(s, f"method_test_{key}") - getattr(s, f"reference_test_{key}") for s in rows
            ]
            contrast = method != reference  # the reference's own rows say what the fix gives
            raw.append(_gain(diff) if contrast else (nan, nan, 0, 0, len(rows), nan))
        adjusted = holm([g[5] for g in raw])
        gains[key] = [Gain(*g, float(p)) for g, p in zip(raw, adjusted, strict=True)]
    out: list[MatchedRow] = []
    for i, (method, m_off, r_off, level, primary, rows) in enumerate(pending):
        note = ""
        if out and out[-1].method == method and out[-1].per_seed == rows and rows:
            note = "same fits as the row above: no better worst class lower down on validation"
        out.append(
            MatchedRow(
                method,
                reference,
                m_off,
                r_off,
                level,
                rows,
                gains["worst"][i],
                gains["hard"][i],
                primary,
                note,
            )
        )
    return out


def _kept(r: RunResult) -> RunLogits | None:
    """The run's validation and test logits, or None when it kept no logits of either."""
    if not has_logits(r.run_dir or ""):
        return None
    kept = load_logits(r.run_dir or "", owner_of_result(r))
    return kept if kept.val is not None and kept.test is not None else None


def frontiers(results: list[RunResult], reference: str, curves: bool = True) -> Frontiers | None:
    """The frontiers and the matched-accuracy table of ``results`` (None without a
    reference); runs without logits are listed and nothing is computed. ``curves=False``:
    the table alone (the curves are the plot's; the marks need only the table)."""
    if not any(r.method == reference for r in results):
        return None
    kept = {str(r.run_dir): _kept(r) for r in results}
    lacking = [run for run, logits in kept.items() if logits is None]
    if lacking:
        return Frontiers(reference, {}, [], lacking)
    hard = hard_sets(results, reference)
    runs: dict[str, dict[int, _Run]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of small (N, K) argmaxes: threads only add overhead
    try:
        for r in results:
            logits = kept[str(r.run_dir)]
            assert logits is not None
            runs.setdefault(r.method, {})[r.seed] = _Run(r.seed, logits, hard[str(r.run_dir)][0])
        traced = {m: _curve(seeds) for m, seeds in runs.items()} if curves else {}
        return Frontiers(reference, traced, _matched(runs, reference), [])
    finally:
        torch.set_num_threads(threads)
