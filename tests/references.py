"""Slow, obviously-correct references: Python loops over samples and classes, float64 maths.

Nothing here imports mr2; each function restates a formula of method.md directly.
"""

from __future__ import annotations

import math

from torch import Tensor


def pnorm_sq(v: list[float], p: float) -> float:
    return sum(abs(x) ** p for x in v) ** (2.0 / p)


def class_statistics(features: Tensor, targets: Tensor, k: int, p: float = 2.0):
    rows = features.double().tolist()
    ys = targets.tolist()
    count, norm_sq, dev = [0.0] * k, [0.0] * k, [0.0] * k
    for c in range(k):
        members = [r for r, y in zip(rows, ys, strict=True) if y == c]
        if not members:
            continue
        d = len(members[0])
        mu = [sum(m[j] for m in members) / len(members) for j in range(d)]
        count[c] = float(len(members))
        norm_sq[c] = pnorm_sq(mu, p)
        dev[c] = sum(pnorm_sq([m[j] - mu[j] for j in range(d)], p) for m in members) / len(members)
    return count, norm_sq, dev


def weighted_statistics(features: Tensor, targets: Tensor, weights: list[float], k: int):
    """Weighted population mean and mean squared 2-norm deviation per class."""
    rows, ys = features.double().tolist(), targets.tolist()
    out = {}
    for c in range(k):
        idx = [i for i, y in enumerate(ys) if y == c]
        if not idx:
            continue
        w = sum(weights[i] for i in idx)
        d = len(rows[0])
        mu = [sum(weights[i] * rows[i][j] for i in idx) / w for j in range(d)]
        var = sum(weights[i] * pnorm_sq([rows[i][j] - mu[j] for j in range(d)], 2) for i in idx) / w
        out[c] = (w, mu, var)
    return out


def margins(norm_sq: list[float], dev: list[float], seen: list[bool], c_bar: float) -> list[float]:
    """The documented formula, with its floor: each seen class's cube root at least 0.1 of
    the seen classes' mean, then normalised to mean c_bar."""
    roots = [(n + s) ** (1 / 3) for n, s, ok in zip(norm_sq, dev, seen, strict=True) if ok]
    floor = 0.1 * sum(roots) / len(roots) if roots else 0.0
    roots = [max(r, floor) for r in roots]
    mean_root = sum(roots) / len(roots) if roots else 0.0
    out = []
    for n, s, ok in zip(norm_sq, dev, seen, strict=True):
        root = max((n + s) ** (1 / 3), floor)
        out.append(c_bar * root / mean_root if ok and mean_root > 0 else c_bar)
    return out


def logit_margin_ce(logits: Tensor, targets: Tensor, gamma: list[float]) -> list[float]:
    out = []
    for z, y in zip(logits.double().tolist(), targets.tolist(), strict=True):
        scaled = [v / gamma[y] for v in z]
        m = max(scaled)
        out.append(m + math.log(sum(math.exp(v - m) for v in scaled)) - scaled[y])
    return out


def representation_margin(features: Tensor, targets: Tensor, s_bar: float, t: float = 1.0):
    rows, ys = features.double().tolist(), targets.tolist()
    out = []
    for i, (fi, yi) in enumerate(zip(rows, ys, strict=True)):
        total = 0.0
        for j, (fj, yj) in enumerate(zip(rows, ys, strict=True)):
            if j != i and yj == yi:
                dist = sum((a - b) ** 2 for a, b in zip(fi, fj, strict=True))
                total += math.exp((dist - 2 * s_bar) / t)
        out.append(math.log1p(total))
    return out


def log_softmax_row(z: list[float]) -> list[float]:
    m = max(z)
    lse = m + math.log(sum(math.exp(v - m) for v in z))
    return [v - lse for v in z]


def focal(logits: Tensor, targets: Tensor, gamma: float) -> list[float]:
    out = []
    for z, y in zip(logits.double().tolist(), targets.tolist(), strict=True):
        logp = log_softmax_row(z)[y]
        out.append(-((1 - math.exp(logp)) ** gamma) * logp)
    return out


def supcon(features: Tensor, targets: Tensor, t: float) -> list[float]:
    rows = [[v / math.sqrt(sum(x * x for x in r)) for v in r] for r in features.double().tolist()]
    ys = targets.tolist()
    out = []
    for i, (zi, yi) in enumerate(zip(rows, ys, strict=True)):
        sims = [sum(a * b for a, b in zip(zi, zj, strict=True)) / t for zj in rows]
        denom = math.log(sum(math.exp(s) for j, s in enumerate(sims) if j != i))
        pos = [sims[j] - denom for j, y in enumerate(ys) if j != i and y == yi]
        out.append(-sum(pos) / len(pos) if pos else 0.0)
    return out


def offsets_by_exact_coordinate_ascent(z, y, group: str, hard=None, min_overall=-1.0, sweeps=20):
    """Coordinate ascent over per-class offsets maximising (G, overall) lexicographically
    with overall >= ``min_overall``; G the worst class recall or the mean over ``hard``.
    numpy in, (offsets, recall, overall) out; starts from zero offsets."""
    import numpy as np

    def key(recall, overall):
        if overall < min_overall - 1e-12:
            return None
        return (recall.min() if group == "worst" else recall[hard].mean(), overall)

    b = coordinate_ascent(z, y, key, np.zeros(np.shape(z)[1]), sweeps)
    recall, overall = _scores(z, y, b)
    return b, recall, overall


def _scores(z, y, b):
    import numpy as np

    pred = (np.asarray(z, dtype=np.float64) + b).argmax(1)
    k = np.shape(z)[1]
    recall = np.bincount(y[pred == y], minlength=k) / np.bincount(y, minlength=k)
    return recall, float((pred == y).mean())


def coordinate_ascent(z, y, key, start, sweeps=20):
    """Coordinate ascent on ``key(recall, overall)`` (a tuple to maximise, None where
    infeasible), each step an exact 1-D search: every breakpoint where a sample's
    prediction changes is found by brute force and every value between two is scored by a
    full argmax. Returns the offsets."""
    import numpy as np

    z, y = np.asarray(z, dtype=np.float64), np.asarray(y)
    b = np.asarray(start, dtype=np.float64).copy()
    best = key(*_scores(z, y, b))
    for _ in range(sweeps):
        moved = False
        for c in range(z.shape[1]):
            others = z + b
            others[:, c] = -np.inf
            cuts = np.unique(others.max(1) - z[:, c])
            mids = np.concatenate([[cuts[0] - 1.0], (cuts[1:] + cuts[:-1]) / 2, [cuts[-1] + 1.0]])
            for value in mids:
                trial = b.copy()
                trial[c] = value
                found = key(*_scores(z, y, trial))
                if found is not None and (best is None or found > tuple(v + 1e-12 for v in best)):
                    best, b, moved = found, trial, True
        if not moved:
            break
    return b
