"""Exact coordinate ascent over per-class offsets: the fitting core of ``ClassOffsets``.

Predictions are ``argmax_k z_ik + b_k``. With every offset but b_k fixed, sample i is
predicted k exactly when b_k exceeds its **breakpoint** t_i = max_{j != k}(z_ij + b_j) - z_ik,
so every class's recall and the overall accuracy are step functions of b_k that change only
at the breakpoints. One coordinate step sorts them and reads, for every interval between
two, the recalls and accuracy by cumulative counts (the worst class by a running minimum:
moving b_k only raises class k and only lowers the others), then moves b_k to the middle of
the best interval. Only samples whose correctness can change take part: those of class k
and those whose label is their best class other than k. Steps are taken class by class,
weakest first, until every class has been searched since the last move (or ``sweeps`` run
out); each step is
re-scored with the real argmax and kept only if it improves the key, so the fit never
lowers what it optimises.

The key is lexicographic: (goal, tie-break, overall). The goal is
``(1 - tradeoff) * overall + tradeoff * G`` with G the worst class, the mean of the hard
classes or the mean of the worst ``tail`` classes; among equal worst classes the one with
fewer classes near the bottom (a soft minimum) is preferred, so ties between several
weakest classes do not stall the ascent. With ``tradeoff = 1`` (and under ``floor``, the
smallest overall accuracy allowed) a second ascent then raises overall accuracy while G
stays where the first left it: accuracy is never spent for nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SOFT = 30.0  # temperature of the soft minimum that breaks ties between weakest classes
TOL = 1e-4  # after three sweeps, one that gains less (goal or accuracy) ends the climb
EPS = 1e-12  # key improvements smaller than this are rounding, not progress


@dataclass(frozen=True)
class Goal:
    """What a fit optimises: ``objective`` in worst / hard / tail, ``tradeoff`` in [0, 1],
    ``hard`` (K,) bool (the hard objective's classes), ``tail`` (the number of classes the
    tail objective averages) and ``floor`` (the least overall accuracy allowed)."""

    objective: str
    tradeoff: float
    hard: np.ndarray
    tail: int
    floor: float = -math.inf


@dataclass(frozen=True)
class Stats:
    """Counts of one candidate: correct per class (K,) and overall."""

    correct: np.ndarray
    support: np.ndarray

    @property
    def recall(self) -> np.ndarray:
        return self.correct / self.support

    @property
    def overall(self) -> float:
        return float(self.correct.sum() / self.support.sum())

    def group(self, goal: Goal) -> float:
        r = self.recall
        if goal.objective == "worst":
            return float(r.min())
        if goal.objective == "hard":
            return float(r[goal.hard].mean())
        return float(np.sort(r)[: goal.tail].mean())

    def plain_key(self, goal: Goal) -> tuple[float, float]:
        """(goal, overall): what a fit is judged by."""
        a, overall = goal.tradeoff, self.overall
        return ((1 - a) * overall + a * self.group(goal), overall)

    def key(self, goal: Goal) -> tuple[float, float, float]:
        """(goal, soft minimum, overall): what the ascent climbs (the soft minimum only
        breaks ties between weakest classes)."""
        value, overall = self.plain_key(goal)
        soft = -float(np.exp(-SOFT * self.recall).sum()) if goal.objective == "worst" else 0.0
        return (value, soft, overall)


def better(new: tuple[float, ...], old: tuple[float, ...]) -> bool:
    """Lexicographically larger by more than rounding."""
    for a, b in zip(new, old, strict=True):
        if a > b + EPS:
            return True
        if a < b - EPS:
            return False
    return False


class Ascent:
    """The state of one fit: logits (N, K) float32, labels, offsets and the top two of
    every row of ``z + b`` (kept up to date as single offsets move)."""

    def __init__(self, z: np.ndarray, y: np.ndarray, b: np.ndarray) -> None:
        self.z, self.y = z, y
        self.n, self.k = z.shape
        self.y_small = y.astype(np.int16 if self.k < 2**15 else np.int64)  # radix-sortable
        self.support = np.bincount(y, minlength=self.k).astype(np.float64)
        self.zt = np.ascontiguousarray(z.T)  # columns, for one class's breakpoints
        by_class = np.argsort(y, kind="stable")
        self.own = np.split(by_class, np.cumsum(np.bincount(y, minlength=self.k))[:-1])
        self.b = b.astype(np.float64).copy()
        self._top()

    def _top(self, rows: np.ndarray | None = None) -> None:
        """Top two values and classes of ``s`` (of ``rows`` only, when given); ties go to
        the lower class, as argmax breaks them."""
        s = (self.z if rows is None else self.z[rows]) + self.b.astype(np.float32)
        if self.k > 2:
            idx = np.argpartition(-s, 1, axis=1)[:, :2]
        else:
            idx = np.tile(np.arange(2), (len(s), 1))
        val = np.take_along_axis(s, idx, 1)
        swap = (val[:, 1] > val[:, 0]) | ((val[:, 1] == val[:, 0]) & (idx[:, 1] < idx[:, 0]))
        idx[swap], val[swap] = idx[swap][:, ::-1], val[swap][:, ::-1]
        if rows is None:
            self.i1, self.i2 = idx[:, 0].copy(), idx[:, 1].copy()
            self.v1, self.v2 = val[:, 0].copy(), val[:, 1].copy()
        else:
            self.i1[rows], self.i2[rows] = idx[:, 0], idx[:, 1]
            self.v1[rows], self.v2[rows] = val[:, 0], val[:, 1]
        self._score()

    def stats(self) -> Stats:
        return Stats(self.correct.copy(), self.support)

    def _score(self) -> None:
        self.hit = self.i1 == self.y
        self.correct = np.bincount(self.y[self.hit], minlength=self.k).astype(np.float64)

    def set(self, k: int, value: float) -> None:
        """Move b_k to ``value`` and update the rows whose top two it changes."""
        self.b[k] = value
        col = self.zt[k] + np.float32(value)
        rows = np.flatnonzero((self.i1 == k) | (self.i2 == k) | (col >= self.v2))
        if len(rows):
            self._top(rows)

    def line(
        self, k: int, goal: Goal, members: np.ndarray, g_min: float | None
    ) -> tuple[float, tuple[float, ...]] | None:
        """The best b_k along coordinate k and the key it gives (None: no interval is
        feasible). ``members``: the classes G averages (hard or tail); ``g_min``: the
        second ascent's bound on G (its key is then overall accuracy alone)."""
        t, cls, fixed = self._events(k)
        correct, group, soft = _intervals(cls, cls == k, k, self.support, fixed, goal, members)
        overall = correct / self.n
        ok = overall >= goal.floor - EPS
        ok[1:-1] &= t[1:] > t[:-1]  # empty intervals (tied breakpoints) hold no b_k
        if g_min is not None:
            ok &= group >= g_min - EPS
            keys: tuple[np.ndarray, ...] = (overall,)
        else:
            a = goal.tradeoff
            keys = ((1 - a) * overall + a * group, soft, overall)
        j = np.flatnonzero(ok)
        if not len(j):
            return None
        best = int(j[np.lexsort(tuple(kk[j] for kk in reversed(keys)))[-1]])
        if goal.objective != "tail":
            return _point(t, best), tuple(float(kk[best]) for kk in keys)
        # the tail's group was a fixed set of classes, an upper bound: score the interval
        # exactly, so that no move is tried (and undone) on the strength of the bound
        mine = cls == k
        lost = np.bincount(cls[:best][~mine[:best]], minlength=self.k)
        correct = np.bincount(cls[~mine], minlength=self.k) + fixed - lost
        correct[k] = mine[:best].sum()
        stats = Stats(correct.astype(np.float64), self.support)
        if g_min is not None and stats.group(goal) < g_min - EPS:
            return None
        return _point(t, best), (stats.overall,) if g_min is not None else stats.key(goal)

    def _events(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Breakpoints along b_k (sorted), their samples' classes, and (K,) the samples
        correct in every interval searched. Events: every sample of class k; the samples
        predicted k whose runner-up is their label; the correct samples of other classes
        whose breakpoint lies below class k's last (above it b_k only loses)."""
        zk, top = self.zt[k], self.i1 == k
        own = self.own[k]
        t_own = np.where(top[own], self.v2[own], self.v1[own]) - zk[own]
        ceiling = t_own.max()
        taken = np.flatnonzero(top)
        taken = taken[(self.y[taken] != k) & (self.i2[taken] == self.y[taken])]
        gap = self.v1 - zk  # a correct sample of another class is lost above it
        near = np.flatnonzero(self.hit & ~top & (gap <= ceiling))
        fixed = self.correct - np.bincount(self.y[near], minlength=self.k)
        fixed[k] = 0.0
        t = np.concatenate([t_own, self.v2[taken] - zk[taken], gap[near]]).astype(np.float64)
        cls = np.concatenate([self.y_small[own], self.y_small[taken], self.y_small[near]])
        order = np.argsort(t, kind="stable")
        return t[order], cls[order], fixed


def _intervals(
    cls: np.ndarray,
    mine: np.ndarray,
    k: int,
    support: np.ndarray,
    fixed: np.ndarray,
    goal: Goal,
    members: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per interval j = 0 .. R (b_k between breakpoints j - 1 and j): the correct count,
    G (the worst class, or the mean of ``members``) and minus the soft minimum's sum.
    Events in breakpoint order: a sample of class k becomes correct, another becomes wrong;
    ``fixed`` (K,): samples correct in every interval."""
    n_k = support[k]
    base = np.bincount(cls[~mine], minlength=len(support)) + fixed
    order = np.argsort(cls, kind="stable")  # cumulative count of each event's class
    sorted_cls = cls[order]
    first = np.searchsorted(sorted_cls, sorted_cls, side="left")
    rank = np.empty(len(cls), dtype=np.float64)
    rank[order] = np.arange(len(cls)) - first + 1
    gained = np.concatenate([[0.0], np.cumsum(mine)])
    lost = np.concatenate([[0.0], np.cumsum(~mine)])
    correct = base.sum() + gained - lost
    c = cls.astype(np.int64)
    after = np.where(mine, rank / n_k, (base[c] - rank) / support[c])
    before = np.where(mine, (rank - 1) / n_k, (base[c] - rank + 1) / support[c])
    r0 = base / support
    r0[k] = 0.0
    if goal.objective == "worst":
        soft = -(np.exp(-SOFT * r0).sum() + _cum(np.exp(-SOFT * after) - np.exp(-SOFT * before)))
        lows = np.where(mine, np.inf, after)
        others = np.delete(r0, k).min() if len(r0) > 1 else np.inf
        worst_others = np.minimum.accumulate(np.concatenate([[others], lows]))
        return correct, np.minimum(gained / n_k, worst_others), soft
    size = max(int(members.sum()), 1)
    step = np.where(members[c], after - before, 0.0)
    return correct, (r0[members].sum() + _cum(step)) / size, np.zeros_like(correct)


def _cum(x: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(x)])


def _point(t: np.ndarray, j: int) -> float:
    """A value of b_k inside interval j (between breakpoints j - 1 and j, 0-based); the
    last one just above the last breakpoint (losses beyond it were left out)."""
    if len(t) == 0:
        return 0.0
    gap = max(float(t[-1] - t[0]) / len(t), 1e-3)
    if j == 0:
        return float(t[0] - gap)
    if j == len(t):
        return float(t[-1] + min(gap, 1e-3))
    return float(0.5 * (t[j - 1] + t[j]))


def members_of(stats: Stats, goal: Goal) -> np.ndarray:
    """(K,) bool: the classes G averages now (hard: given; tail: the weakest ``tail``)."""
    if goal.objective == "hard":
        return goal.hard
    mask = np.zeros(len(stats.support), dtype=bool)
    if goal.objective == "tail":
        mask[np.argsort(stats.recall, kind="stable")[: goal.tail]] = True
    return mask


def climb(state: Ascent, goal: Goal, sweeps: int, g_min: float | None = None) -> Stats:
    """Coordinate steps, weakest class first, each kept only when the re-scored key is
    better, until every class has been searched since the last move (no line can change
    then), or ``sweeps`` run out."""
    current, stale = state.stats(), 0  # stale: classes searched since the last move

    def key(s: Stats) -> tuple[float, ...]:
        return (s.overall,) if g_min is not None else s.key(goal)

    for sweep in range(sweeps):
        start = current.plain_key(goal)
        for k in np.argsort(current.recall, kind="stable"):
            if stale >= state.k:
                return current
            stale += 1
            found = state.line(int(k), goal, members_of(current, goal), g_min)
            if found is None or not better(found[1], key(current)):
                continue
            old = state.b[k]
            state.set(int(k), found[0])
            new = state.stats()
            fits = new.overall >= goal.floor - EPS and (
                g_min is None or new.group(goal) >= g_min - EPS
            )
            if fits and better(key(new), key(current)):
                current, stale = new, 0
            else:
                state.set(int(k), old)
        gain = np.subtract(current.plain_key(goal), start)
        if stale >= state.k or (sweep >= 2 and gain.max() < TOL):
            break
    return current
