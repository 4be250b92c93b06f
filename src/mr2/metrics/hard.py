"""Hard classes without selection bias: classes are ranked on data they are not scored on.

Ranking classes by a run's test accuracy and then scoring those classes on the same test
set selects noise: the classes that look hardest are, on average, the ones whose test
samples or whose model happened to go badly, so any other run (even one of the same
method) looks better on them. With K = 10 and a few seeds the spurious "hard-third gain"
is a sizeable fraction of a point; with K = 100 it is larger.

There are two sources of such noise, and the estimator here keeps both out of the ranking:

- the test samples (which samples of a class happened to be drawn): removed by ranking on
  validation, or by cross-fitting (rank on one half of each class's test samples, score on
  the other half, swap, average);
- the scored reference model's own training noise (seed s's ERM model is weak on Shirt by
  chance, on validation and test alike): removed by ranking seed s on the reference's
  *other* seeds (leave one seed out). Ranking on the same model's validation leaves this
  part in; the null simulation in ``tests/test_hard.py`` measures it.

``choose_ranking`` picks the best source every run supports, in this order (``SOURCES``):

- ``val, other seeds``: the reference's validation accuracy, seeds != s. Unbiased.
- ``halves, other seeds``: half A of the reference's test samples, seeds != s, scored on
  half B, then the reverse, averaged. Unbiased.
- ``val, same seed`` (one reference seed): its validation accuracy. Test-sample noise out,
  the model's own noise in.
- ``halves, same seed``: its own test halves, cross-fitted. The same.
- ``test, other seeds``: the reference's test accuracy, seeds != s. Gains unbiased, levels
  not.
- ``test, same seed``: the scored test accuracies themselves. Optimistic.

"test, other seeds" (old runs with neither validation nor halves) keeps paired *gains*
unbiased (both runs of the pair see the same test samples, and the ranking holds neither
model), but the absolute hard-third level is the one of classes whose test samples are hard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mr2.metrics.summary import _as_numpy, rank_easy_to_hard

GROUPS = ("easy", "medium", "hard")
SOURCES = (
    "val, other seeds",
    "halves, other seeds",
    "val, same seed",
    "halves, same seed",
    "test, other seeds",
    "test, same seed",
)
UNBIASED = {"val, other seeds", "halves, other seeds"}
LABELS = {
    "val, other seeds": "ranked on the reference's validation accuracy of the other seeds",
    "halves, other seeds": "ranked on cross-fitted test halves of the reference's other seeds",
    "val, same seed": "ranked on the reference's validation accuracy (one seed)",
    "halves, same seed": "ranked on cross-fitted test halves (one seed)",
    "test, other seeds": "ranked on the reference's other seeds' test: gains unbiased, levels not",
    "test, same seed": "ranked on test: optimistic",
}
CROSSFIT_SEED = 0


def crossfit_halves(targets, seed: int = CROSSFIT_SEED) -> np.ndarray:
    """(N,) bool, True for the test samples in half A: each class's samples, in a seeded
    random order, are split in two (half A takes floor(n_k / 2), half B the rest). The
    assignment depends only on the labels in their order and on ``seed``, so every run
    evaluated on the same test set in the same order gets the same halves."""
    y = _as_numpy(targets).astype(np.int64).ravel()
    keys = np.random.default_rng(seed).permutation(len(y))
    order = np.lexsort((keys, y))  # by class, then by the seeded key
    counts = np.bincount(y) if len(y) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(y) else counts
    position = np.empty(len(y), np.int64)
    position[order] = np.arange(len(y)) - starts[y[order]]
    return position < counts[y] // 2


def half_accuracies(targets, correct, num_classes: int, seed: int = CROSSFIT_SEED) -> np.ndarray:
    """(2, K) per-class accuracy on half A and half B of the test samples (NaN: a class with
    no sample in that half). ``correct``: (N,) 0/1 hits of one run, in label order."""
    y = _as_numpy(targets).astype(np.int64).ravel()
    hit = _as_numpy(correct).astype(np.float64).ravel()
    a = crossfit_halves(y, seed)
    out = np.full((2, num_classes), np.nan)
    for i, mask in enumerate((a, ~a)):
        n = np.bincount(y[mask], minlength=num_classes)
        right = np.bincount(y[mask], weights=hit[mask], minlength=num_classes)
        out[i] = np.where(n > 0, right / np.maximum(n, 1), np.nan)
    return out


def labels_digest(targets) -> str:
    """SHA-256 of the labels in their order (int64): runs whose halves can be paired share it."""
    y = np.ascontiguousarray(_as_numpy(targets).astype(np.int64).ravel())
    return hashlib.sha256(y.tobytes()).hexdigest()


@dataclass(frozen=True)
class ClassEvidence:
    """What one run offers the estimator: (K,) test accuracies, and optionally (K,)
    validation accuracies and (2, K) test-half accuracies (``half_accuracies``)."""

    test: np.ndarray
    val: np.ndarray | None = None
    halves: np.ndarray | None = None

    @classmethod
    def of(cls, test, val=None, halves=None) -> ClassEvidence:
        return cls(
            _as_numpy(test),
            None if val is None else _as_numpy(val),
            None if halves is None else _as_numpy(halves),
        )


@dataclass(frozen=True)
class Fold:
    """One ranking and the vector it is scored on: ``score`` is "test", "half0" or "half1"."""

    rank: np.ndarray
    score: str


@dataclass(frozen=True)
class HardRanking:
    """How classes are ranked for each reference seed (``folds[seed]``; ``default`` for a
    seed the reference does not have), with its ``source`` (see ``SOURCES``)."""

    source: str
    folds: Mapping[int, tuple[Fold, ...]]
    default: tuple[Fold, ...]
    fraction: float = 1 / 3

    @property
    def unbiased(self) -> bool:
        return self.source in UNBIASED

    @property
    def label(self) -> str:
        """How a table says it: the source, and "optimistic" where it is."""
        return LABELS.get(self.source, f"ranked on {self.source}")

    def folds_for(self, seed: int) -> tuple[Fold, ...]:
        return self.folds.get(seed, self.default)


def _mean(vectors: list[np.ndarray]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        stacked = np.stack(vectors)
        n = (~np.isnan(stacked)).sum(0)
        return np.where(n > 0, np.nansum(stacked, 0) / np.maximum(n, 1), np.nan)


def _folds(kind: str, runs: list[ClassEvidence]) -> tuple[Fold, ...]:
    if kind == "val":
        return (Fold(_mean([r.val for r in runs if r.val is not None]), "test"),)
    if kind == "halves":
        halves = [r.halves for r in runs if r.halves is not None]
        return (
            Fold(_mean([h[0] for h in halves]), "half1"),
            Fold(_mean([h[1] for h in halves]), "half0"),
        )
    return (Fold(_mean([r.test for r in runs]), "test"),)


def choose_ranking(
    reference: Mapping[int, ClassEvidence],
    scored: Sequence[ClassEvidence] = (),
    *,
    fraction: float = 1 / 3,
    halves_pair: bool = True,
) -> HardRanking:
    """The best ranking every run supports: validation if every reference run has it,
    else cross-fitted halves if every run (reference and ``scored``) has them and
    ``halves_pair`` (their test labels are in the same order), else test. With two or more
    reference seeds, seed s is ranked on the others."""
    if not reference:
        raise ValueError("the reference method has no run to rank the classes with")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    runs = list(reference.values())
    if all(r.val is not None for r in runs):
        kind = "val"
    elif halves_pair and all(r.halves is not None for r in [*runs, *scored]):
        kind = "halves"
    else:
        kind = "test"
    loso = len(reference) >= 2
    folds = {
        s: _folds(kind, [r for t, r in reference.items() if t != s] if loso else runs)
        for s in reference
    }
    source = f"{kind}, {'other seeds' if loso else 'same seed'}"
    return HardRanking(source, folds, _folds(kind, runs), fraction)


def ranked_groups(
    rank: np.ndarray, fraction: float = 1 / 3, keep: np.ndarray | None = None
) -> dict[str, list[int]]:
    """Easy / medium / hard class indices from a ranking vector (NaN ranks hardest) over the
    classes in ``keep`` (default all; classes without test samples are left out): hard is
    the last floor(fraction * K) classes (at least one), the rest split in two with the
    easier group taking the extra class, so thirds match ``split_thirds`` for K >= 3 (with
    K = 2 the hard "third" is the harder class, where ``split_thirds`` leaves it empty)."""
    r = np.nan_to_num(_as_numpy(rank), nan=-np.inf)
    idx = np.arange(len(r)) if keep is None else np.flatnonzero(keep)
    order = idx[rank_easy_to_hard(r[idx])]
    k_hard = max(1, int(np.floor(fraction * len(order) + 1e-9)))
    easy, medium = np.array_split(order[: len(order) - k_hard], 2)
    return {"easy": easy.tolist(), "medium": medium.tolist(), "hard": order[-k_hard:].tolist()}


def _scored(run: ClassEvidence, fold: Fold) -> np.ndarray:
    if fold.score == "test":
        return run.test
    if run.halves is None:
        raise ValueError("this ranking scores test halves, but a run has none")
    return run.halves[int(fold.score[-1])]


def _group_mean(values: np.ndarray, classes: list[int]) -> float:
    v = values[classes]
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def group_levels(ranking: HardRanking, run: ClassEvidence, seed: int) -> dict[str, float]:
    """A run's easy / medium / hard accuracy under ``ranking`` (the folds of its seed),
    averaged over the folds."""
    out: dict[str, list[float]] = {g: [] for g in GROUPS}
    present = ~np.isnan(run.test)  # classes with test samples (the same in every run)
    for fold in ranking.folds_for(seed):
        groups = ranked_groups(fold.rank, ranking.fraction, present)
        scored = _scored(run, fold)
        for g in GROUPS:
            out[g].append(_group_mean(scored, groups[g]))
    return {g: float(np.mean(v)) for g, v in out.items()}


def group_gains(
    ranking: HardRanking, run: ClassEvidence, reference: ClassEvidence, seed: int
) -> dict[str, float]:
    """Paired easy / medium / hard gain of ``run`` over the reference run of the same seed,
    both scored on the same folds."""
    a, b = group_levels(ranking, run, seed), group_levels(ranking, reference, seed)
    return {g: a[g] - b[g] for g in GROUPS}


def crossfit_groups(per_class, halves, fraction: float = 1 / 3) -> dict[str, float]:
    """One run alone: its easy / medium / hard accuracy cross-fitted on its own test
    halves (ranked on one half, scored on the other, swapped, averaged)."""
    run = ClassEvidence.of(per_class, halves=halves)
    return group_levels(choose_ranking({0: run}, fraction=fraction), run, 0)


def display_groups(ranking: HardRanking) -> dict[str, list[int]]:
    """One set of groups for tables and plots (all reference seeds; the first fold)."""
    return ranked_groups(ranking.default[0].rank, ranking.fraction)


__all__ = [
    "SOURCES",
    "ClassEvidence",
    "Fold",
    "HardRanking",
    "choose_ranking",
    "crossfit_groups",
    "crossfit_halves",
    "display_groups",
    "group_gains",
    "group_levels",
    "half_accuracies",
    "labels_digest",
    "ranked_groups",
]
