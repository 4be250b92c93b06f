"""The functional core of post-hoc class offsets: predictions ``argmax(logits + b)`` with one
additive offset per class, fit on validation data to an objective over per-class recalls.

Objectives: ``"worst"`` (the lowest class recall), ``"hard"`` (the mean recall of given hard
classes) and ``"tail"`` (the mean recall of the weakest ``tail`` classes: for many classes,
where one class's recall is mostly noise), each traded against overall accuracy by
``tradeoff`` = a in [0, 1]: score = (1 - a) * overall + a * G, or maximised alone under a
least overall accuracy (``min_overall``).

A fit starts from the better of b = 0 and the best candidate of the plug-in path
(``argmax_k z_k + log(w_k / pi_k)`` with w the weights of the weighted recall sum: Menon et
al., ICLR 2021; Narasimhan & Menon, 2021; for "worst" the dual weights by exponentiated
gradient), then climbs by exact coordinate ascent (``mr2.posthoc.ascent``). Deterministic;
the fit never ends below b = 0 on what it optimises, nor below ``min_overall``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain

import numpy as np
import torch
from torch import Tensor

from mr2.posthoc.ascent import EPS, Ascent, Goal, Stats, better, climb

OBJECTIVES = ("worst", "hard", "tail")
BETA_MAX = 8.0
ETA = 2.0  # dual step, in units of the logits' margin scale (decays as 1 / sqrt(t + 1))


@dataclass(frozen=True)
class Scores:
    """Per-class recall (K,), overall accuracy, worst class, hard-class mean and the
    class counts (K,)."""

    recall: Tensor
    overall: float
    worst: float
    hard: float
    support: Tensor

    def tail(self, fraction: float) -> float:
        """The mean recall of the weakest ``fraction`` of the classes (at least one)."""
        m = tail_size(len(self.recall), fraction)
        return float(self.recall.sort().values[:m].mean())


CHUNK = 8192  # rows per argmax: a reused buffer, not a new (N, K) tensor per round


def predictions(logits: Tensor, offsets: Tensor) -> Tensor:
    """``argmax(logits + offsets, 1)``, computed in row chunks through one buffer."""
    out = torch.empty(len(logits), dtype=torch.long)
    buf = torch.empty(min(CHUNK, len(logits)), logits.shape[1], dtype=logits.dtype)
    b = offsets.to(logits.dtype)
    for start in range(0, len(logits), CHUNK):
        part = logits[start : start + CHUNK]
        torch.add(part, b, out=buf[: len(part)])
        out[start : start + len(part)] = buf[: len(part)].argmax(1)
    return out


def scores(logits: Tensor, labels: Tensor, offsets: Tensor, hard: Tensor) -> Scores:
    """Recalls of ``argmax(logits + offsets)`` against ``labels``; ``hard``: (K,) bool."""
    k = logits.shape[1]
    hit = predictions(logits, offsets) == labels
    support = torch.bincount(labels, minlength=k).double()
    recall = torch.bincount(labels[hit], minlength=k).double() / support
    return Scores(
        recall,
        float(hit.double().mean()),
        float(recall.min()),
        float(recall[hard].mean()) if bool(hard.any()) else float("nan"),
        support,
    )


def tail_size(num_classes: int, fraction: float) -> int:
    """How many classes the tail objective averages: ceil(fraction * K), at least one."""
    return max(1, math.ceil(fraction * num_classes - 1e-9))


def margin_scale(logits: Tensor) -> float:
    """The median gap between each sample's two largest logits: the logit scale at which
    an offset changes predictions (steps are taken in its units; logits are rarely
    calibrated)."""
    top = logits[:: max(1, len(logits) // 4096)].topk(2, dim=1).values
    return max(float((top[:, 0] - top[:, 1]).median()), 1e-3)


def _plug_in(prior: Tensor, weights: Tensor) -> Tensor:
    return torch.log(weights.clamp_min(1e-12)) - torch.log(prior)


def path(
    logits: Tensor, labels: Tensor, objective: str, tradeoff: float, hard: Tensor, steps: int
) -> Iterator[tuple[Tensor, Scores]]:
    """The offsets a fit tries, b = 0 first, each with its scores (see the module
    docstring); the worst-class path updates its dual weights from those scores."""
    k = logits.shape[1]
    prior = torch.bincount(labels, minlength=k).double() / len(labels)
    b = torch.zeros(k, dtype=torch.float64)
    if objective == "hard":
        lam = hard.double() / hard.double().sum()
        direction = _plug_in(prior, (1 - tradeoff) * prior + tradeoff * lam)
        for beta in torch.linspace(0, BETA_MAX, steps + 1, dtype=torch.float64):
            b = beta * direction
            yield b, scores(logits, labels, b, hard)
        return
    lam = torch.full((k,), 1.0 / k, dtype=torch.float64)
    scale = margin_scale(logits)
    for t in range(steps + 1):
        s = scores(logits, labels, b, hard)
        yield b, s
        lam = lam * torch.exp(-ETA * scale / (t + 1) ** 0.5 * (s.recall - s.recall.mean()))
        lam = lam / lam.sum()
        b = _plug_in(prior, (1 - tradeoff) * prior + tradeoff * lam)


MULTI_START_MAX_K = 200  # up to this many classes both starts are climbed, above it the better
FEW_CLASSES = 20  # up to this many, RESTARTS more starts (seeded: the fit is deterministic)
RESTARTS = 4
LINE_BUDGET = 3000  # line searches per climb at most (above 150 classes: fewer sweeps)


def fit_offsets(
    logits: Tensor,
    labels: Tensor,
    goal: Goal,
    *,
    starts: int = 20,
    sweeps: int | None = None,
    warm: Tensor | None = None,
) -> tuple[Tensor, Scores, Scores]:
    """The fitted offsets (K,) float64 with the scores at b = 0 and at them (see the module
    docstring); ``ValueError`` when no offsets reach ``goal.floor`` on the fit data.
    ``warm``: climb from these offsets alone (e.g. a fit at a higher accuracy level).
    ``sweeps``: per climb, at most (default: ``LINE_BUDGET`` line searches, 3 to 20 sweeps)."""
    z, y = logits.float().numpy(), labels.numpy()
    k = z.shape[1]
    sweeps = sweeps or min(20, max(3, LINE_BUDGET // k))
    hard = torch.from_numpy(goal.hard)
    before = scores(logits, labels, torch.zeros(k, dtype=torch.float64), hard)
    zero = torch.zeros(k, dtype=torch.float64)
    tried = [warm.double()] if warm is not None else _starts(logits, labels, goal, before, starts)
    climbed = [c for c in (_climb(z, y, b.numpy(), goal, sweeps) for b in tried) if c is not None]
    if not climbed:
        raise ValueError(
            f"no offsets reach an overall accuracy of {goal.floor:.4f} on the fit data "
            f"(zero offsets give {before.overall:.4f}): lower min_overall"
        )
    top = max(climbed, key=lambda state: state.stats().plain_key(goal))
    b = torch.from_numpy(top.b - top.b.mean())
    after = scores(logits, labels, b, hard)  # the real argmax decides (ties in the logits
    # can mislead the kept top two): offsets that do not beat zero are not kept
    gains = better(_plain_stats(after).plain_key(goal), _plain_stats(before).plain_key(goal))
    if _feasible(_plain_stats(before), goal) and not (
        gains and _feasible(_plain_stats(after), goal)
    ):
        return zero, before, before
    return b, before, after


def _starts(logits: Tensor, labels: Tensor, goal: Goal, before: Scores, steps: int) -> list[Tensor]:
    """Where a fit climbs from: zero and the plug-in path's best candidate (above
    ``MULTI_START_MAX_K`` classes the better of them), and up to ``FEW_CLASSES`` seeded
    perturbations of zero."""
    k = logits.shape[1]
    zero = torch.zeros(k, dtype=torch.float64)
    plug_in, best = zero, _plain_stats(before)
    for b, s in _candidates(logits, labels, goal, torch.from_numpy(goal.hard), steps):
        candidate = _plain_stats(s)
        if _feasible(candidate, goal) and (
            not _feasible(best, goal) or better(candidate.key(goal), best.key(goal))
        ):
            plug_in, best = b, candidate
    tried = [plug_in] if k > MULTI_START_MAX_K or plug_in is zero else [zero, plug_in]
    if k <= FEW_CLASSES:  # cheap: climb from seeded perturbations of zero too
        g = torch.Generator().manual_seed(0)
        scale = margin_scale(logits)
        tried += [scale * torch.randn(k, generator=g, dtype=torch.float64) for _ in range(RESTARTS)]
    return tried


SWEEP = (0.2, 0.4, 0.6, 0.8, 1.0)  # plug-in trade-offs tried under a least accuracy


def _candidates(
    logits: Tensor, labels: Tensor, goal: Goal, hard: Tensor, steps: int
) -> Iterator[tuple[Tensor, Scores]]:
    """The plug-in path's candidates: at the goal's trade-off, or, under a least accuracy
    (where the objective's own path soon drops below it), along the paths of ``SWEEP``."""
    if goal.floor == -math.inf:
        return path(logits, labels, goal.objective, goal.tradeoff, hard, steps)
    per = max(steps // len(SWEEP), 4)
    return chain(*(path(logits, labels, goal.objective, a, hard, per) for a in SWEEP))


def _climb(z: np.ndarray, y: np.ndarray, start: np.ndarray, goal: Goal, sweeps: int):
    """The ascent from ``start`` (None when it cannot reach ``goal.floor``): to the floor
    first if it starts below it, then the goal, then (tradeoff 1) overall accuracy at the
    goal reached."""
    state = Ascent(z, y, start)
    if not _feasible(state.stats(), goal):
        climb(state, replace(goal, objective="worst", tradeoff=0.0, floor=-math.inf), sweeps)
        if not _feasible(state.stats(), goal):
            return None
    reached = climb(state, goal, sweeps)
    if goal.tradeoff == 1.0:  # then spend no accuracy the objective does not need
        climb(state, goal, sweeps, g_min=reached.group(goal))
    return state


def _plain_stats(s: Scores) -> Stats:
    support = s.support.numpy()
    return Stats(s.recall.numpy() * support, support)


def _feasible(s: Stats, goal: Goal) -> bool:
    return s.overall >= goal.floor - EPS
