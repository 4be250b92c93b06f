"""The functional core of post-hoc class offsets: predictions ``argmax(logits + b)`` with one
additive offset per class, fit on validation data to an objective over per-class recalls.

Objectives (``Objective``): ``"worst"`` (the lowest class recall) and ``"hard"`` (the mean
recall of given hard classes), each traded against overall accuracy by ``tradeoff`` = a in
[0, 1]: score = (1 - a) * overall + a * G. Overall accuracy is sum_k pi_k recall_k, so the
score is a weighted sum of recalls with weights w_k = (1 - a) pi_k + a lambda_k (lambda:
the worst class's dual weights, or uniform over the hard classes), whose plug-in rule is
``argmax_k z_k + log(w_k / pi_k)`` (Menon et al., ICLR 2021; Narasimhan & Menon, 2021).

- ``"worst"``: exponentiated-gradient ascent on the dual weights lambda (a class with a low
  recall gains weight), ``steps`` rounds, each step in units of the logits' typical margin
  between the two top classes (``margin_scale``);
- ``"hard"``: the plug-in offsets scaled by beta on a grid of ``steps`` values in [0, 8]
  (logits are rarely calibrated, so the scale is searched, not assumed).

Every candidate is scored on the data it is fit on and the best kept; the first candidate
is b = 0, so fitting never lowers the objective there. Deterministic and vectorised: each
round is one (N, K) addition and argmax.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import torch
from torch import Tensor

OBJECTIVES = ("worst", "hard")
BETA_MAX = 8.0
ETA = 2.0  # dual step, in units of the logits' margin scale (decays as 1 / sqrt(t + 1))
SWEEP = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # trade-offs tried under a min_overall constraint


@dataclass(frozen=True)
class Scores:
    """Per-class recall (K,), overall accuracy, worst class and hard-class mean."""

    recall: Tensor
    overall: float
    worst: float
    hard: float

    def objective(self, objective: str, tradeoff: float) -> float:
        g = self.worst if objective == "worst" else self.hard
        return (1.0 - tradeoff) * self.overall + tradeoff * g


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
    )


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


def constrained_path(
    logits: Tensor, labels: Tensor, objective: str, hard: Tensor, steps: int
) -> Iterator[tuple[Tensor, Scores]]:
    """The candidates a ``min_overall`` fit chooses among: the paths of the trade-offs in
    ``SWEEP``, ``steps`` candidates in all (at least 4 per trade-off)."""
    per = max(steps // len(SWEEP), 4)
    return chain(*(path(logits, labels, objective, a, hard, per) for a in SWEEP))


def fit_offsets(
    logits: Tensor,
    labels: Tensor,
    objective: str,
    *,
    tradeoff: float,
    hard: Tensor,
    steps: int,
    min_overall: float | None = None,
) -> tuple[Tensor, Scores, Scores]:
    """The best offsets (K,) float64 among ``candidates``, with the scores at b = 0 and at
    them. ``min_overall``: the best G (worst class or hard mean, ``tradeoff`` ignored)
    among offsets whose overall accuracy reaches it, from the candidates of a sweep of the
    trade-off over ``SWEEP``."""
    if min_overall is None:
        tried = path(logits, labels, objective, tradeoff, hard, steps)
    else:
        tried, tradeoff = constrained_path(logits, labels, objective, hard, steps), 1.0
    best: tuple[float, Tensor, Scores] | None = None
    before: Scores | None = None
    for b, s in tried:
        before = before or s
        if min_overall is not None and s.overall < min_overall:
            continue
        value = s.objective(objective, tradeoff)
        if best is None or value > best[0]:
            best = (value, b, s)
    assert before is not None  # b = 0 is always a candidate
    if best is None:
        raise ValueError(
            f"no offsets reach an overall accuracy of {min_overall:.4f} on the fit data (zero "
            f"offsets give {before.overall:.4f}): lower min_overall"
        )
    return best[1], before, best[2]
