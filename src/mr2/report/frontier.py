"""Which method lifts the worst classes at the overall accuracy one can afford, against the
cheapest fix (the reference + post-hoc class offsets)? From the logits every run keeps:

- **frontiers**: per method, offsets fit on each seed's validation logits at trade-offs
  ``TRADEOFFS`` between overall accuracy and the worst class, scored on test and averaged
  over seeds: the curve of worst class (and hard third) against overall accuracy;
- **matched accuracy**: for each seed, the reference's own validation accuracy and
  ``DROPS`` below it are the accuracy levels; every method with offsets (the best worst
  class with validation overall >= the level) and every method without offsets (its own
  accuracy) is compared with the reference + offsets at the same validation accuracy,
  paired over seeds (test worst class and hard third), with the exact sign-flip p and
  Holm's adjustment over the table's rows. Levels and offsets are chosen on validation;
  test is only scored. The hard third is ranked as the report ranks it (validation of the
  reference's other seeds), else on each run's own validation.
"""

from __future__ import annotations

import numpy as np
import torch

from mr2.metrics.paired import holm
from mr2.metrics.uncertainty import sign_flip_p_value
from mr2.posthoc import ClassOffsets
from mr2.posthoc.fit import Scores, constrained_path, scores
from mr2.records.logits import RunLogits, has_logits, load_logits, owner_of_result
from mr2.records.result import RunResult
from mr2.report.offsets import hard_sets
from mr2.report.summary import FrontierPoint, Frontiers, MatchedRow

TRADEOFFS = (0.0, 0.25, 0.5, 0.75, 1.0)
DROPS = (0.0, 0.005, 0.01, 0.02)  # accuracy levels below the reference's own
MATCH_TOLERANCE = 0.001  # mean validation shortfall of a matched contrast's fits (0.1 pt)
STEPS = 24  # candidates per fit (the reference and every method alike): a 6-method x
# 10-seed report in well under a minute


class _Run:
    """One run's kept logits as tensors and its hard classes (None: its own validation)."""

    def __init__(self, kept: RunLogits, hard: list[int]) -> None:
        assert kept.val is not None and kept.test is not None
        self.zv = torch.from_numpy(kept.val.logits.astype(np.float32))
        self.yv = torch.from_numpy(kept.val.labels)
        self.zt = torch.from_numpy(kept.test.logits.astype(np.float32))
        self.yt = torch.from_numpy(kept.test.labels)
        self.hard = hard or None
        self.cache: dict[tuple[tuple[str, float], ...], tuple[Scores, Scores]] = {}
        self.constrained: list[tuple[Scores, Scores]] | None = None
        self.unadjusted = self._plain()

    def fit(self, **options: float) -> tuple[Scores, Scores]:
        """(validation, test) scores with worst-class offsets fit on validation (cached)."""
        key = tuple(sorted(options.items()))
        if key not in self.cache:
            self.cache[key] = self._fit(**options)
        return self.cache[key]

    def _fit(self, **options: float) -> tuple[Scores, Scores]:
        fitted = ClassOffsets("worst", hard_classes=self.hard, steps=STEPS, **options)
        fitted.fit(self.zv, self.yv)
        assert fitted.offsets is not None and fitted.after is not None
        mask = fitted.hard_mask(self.zv.shape[1])
        return fitted.after, scores(self.zt, self.yt, fitted.offsets, mask)

    def at(self, level: float) -> tuple[tuple[Scores, Scores], bool]:
        """The best worst class with validation overall >= ``level`` (the candidates of
        ``ClassOffsets(min_overall=...)``, scored once for every level), or, where none
        reaches it, the best at the highest accuracy they reach (and False)."""
        if self.constrained is None:
            tried = constrained_path(self.zv, self.yv, "worst", self.mask, STEPS)
            self.constrained = [(v, scores(self.zt, self.yt, b, self.mask)) for b, v in tried]
        highest = max(v.overall for v, _ in self.constrained)
        floor = min(level, highest)
        feasible = [c for c in self.constrained if c[0].overall >= floor]
        return max(feasible, key=lambda c: c[0].worst), level <= highest

    def _plain(self) -> tuple[Scores, Scores]:
        """(validation, test) scores without offsets (the hard classes: as a fit ranks)."""
        zero = torch.zeros(self.zv.shape[1])
        self.mask = ClassOffsets(hard_classes=self.hard).hard_mask_for(self.zv, self.yv)
        return (
            scores(self.zv, self.yv, zero, self.mask),
            scores(self.zt, self.yt, zero, self.mask),
        )


def _gain(diff: list[float]) -> tuple[float, float, int, int, float]:
    d = np.asarray(diff, dtype=float)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    p = sign_flip_p_value(d) if len(d) > 1 else float("nan")
    return float(d.mean()), se, int((d > 0).sum()), len(d), p


def _curves(runs: dict[str, dict[int, _Run]]) -> dict[str, list[FrontierPoint]]:
    curves = {}
    for method, seeds in runs.items():
        points = []
        for a in TRADEOFFS:
            tests = [run.fit(tradeoff=a)[1] for run in seeds.values()]
            points.append(
                FrontierPoint(
                    a,
                    *(
                        float(np.mean([getattr(t, m) for t in tests]))
                        for m in ("overall", "worst", "hard")
                    ),
                )
            )
        curves[method] = points
    return curves


def _level(text: str, short: int) -> str:
    """The level's label, saying how many fits could not reach it (those sit at the
    highest validation accuracy their offsets reach)."""
    return text if not short else f"{text} ({short} fit(s) below it)"


def _matched(runs: dict[str, dict[int, _Run]], reference: str) -> list[MatchedRow]:
    ref = runs[reference]
    pending: list[Pending] = []  # pairs: (the method's test, the reference + offsets' test)
    for method, seeds in runs.items():
        pairs, short, gap = [], 0, 0.0
        for seed, run in seeds.items():
            if seed in ref:
                level = run.unadjusted[0].overall
                (val, matched), reached = ref[seed].at(level)
                pairs.append((run.unadjusted[1], matched))
                short, gap = short + (not reached), gap + min(0.0, val.overall - level)
        matches = gap >= -MATCH_TOLERANCE * max(len(pairs), 1)
        pending.append((method, False, _level("own accuracy", short), matches, pairs))
        for drop in DROPS:  # the reference's own rows: what the fix alone gives
            pairs, short, gap = [], 0, 0.0
            for seed, run in seeds.items():
                if seed in ref:
                    level = ref[seed].unadjusted[0].overall - drop
                    (mine, ok), (theirs, ok_ref) = run.at(level), ref[seed].at(level)
                    pairs.append((mine[1], theirs[1]))
                    short += (not ok) + (not ok_ref)
                    gap += min(0.0, mine[0].overall - level) + min(0.0, theirs[0].overall - level)
            label = _level(f"{reference} - {100 * drop:g} pt", short)
            matches = gap >= -MATCH_TOLERANCE * max(len(pairs), 1)
            pending.append((method, True, label, drop == 0.0 and matches, pairs))
    return _rows(pending, reference)


# method, offsets, level, primary, pairs. Primary (a contrast the report may mark): at the
# method's own accuracy, or with offsets at the reference's, where the fits reached that
# validation accuracy to within MATCH_TOLERANCE on average over the seeds (the accuracy
# matched: a method well below the reference's is judged at its own, one above it with
# offsets at the reference's)
Pending = tuple[str, bool, str, bool, list[tuple[Scores, Scores]]]


def _rows(pending: list[Pending], reference: str) -> list[MatchedRow]:
    nan = float("nan")

    def gain(method: str, offsets: bool, diff: list[float]) -> tuple[float, float, int, int, float]:
        fix = method == reference and offsets  # the reference + offsets against itself
        return (0.0, 0.0, 0, len(diff), nan) if fix else _gain(diff)

    worst = [gain(m, o, [a.worst - b.worst for a, b in pairs]) for m, o, *_, pairs in pending]
    hard = [gain(m, o, [a.hard - b.hard for a, b in pairs]) for m, o, *_, pairs in pending]
    worst_holm, hard_holm = holm([g[4] for g in worst]), holm([g[4] for g in hard])
    rows = []
    for i, (method, offsets, level, primary, pairs) in enumerate(pending):
        mean = {
            k: float(np.mean([getattr(m, k) for m, _ in pairs]))
            for k in ("overall", "worst", "hard")
        }
        worst_gain = (*worst[i], float(worst_holm[i]))
        hard_gain = (*hard[i], float(hard_holm[i]))
        overall, worst_mean, hard_mean = mean["overall"], mean["worst"], mean["hard"]
        rows.append(
            MatchedRow(
                method,
                offsets,
                level,
                overall,
                worst_mean,
                hard_mean,
                worst_gain,
                hard_gain,
                primary,
            )
        )
    return rows


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
            runs.setdefault(r.method, {})[r.seed] = _Run(logits, hard[str(r.run_dir)][0])
        traced = _curves(runs) if curves else {}
        return Frontiers(reference, traced, _matched(runs, reference), [])
    finally:
        torch.set_num_threads(threads)
