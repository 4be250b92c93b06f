"""The authors' MR² algorithm written the way their code runs it (method.md §3, §5).

For comparison in benchmarks only: per-class Python loops with a host sync per class
(``.item()`` / tensor truthiness), EMA of each class's batch mean and variance, margins
normalised over classes, and the representation term from per-class distance matrices.
Their bugs are not reproduced (it uses the real K, 2-norm s_bar, no crash), only their
control flow, which is what the benchmark measures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class LoopMR2:
    def __init__(self, num_classes: int, dim: int, decay: float = 0.99, lambda_rep: float = 0.1):
        self.k, self.decay, self.lambda_rep = num_classes, decay, lambda_rep
        self.mu = torch.zeros(num_classes, dim)
        self.var = torch.zeros(num_classes)
        self.seen = [False] * num_classes

    def to(self, device: torch.device) -> LoopMR2:
        self.mu, self.var = self.mu.to(device), self.var.to(device)
        return self

    def __call__(self, logits: Tensor, features: Tensor, targets: Tensor) -> Tensor:
        f = features.detach()
        for k in range(self.k):  # loop 1: statistics, one host sync per class
            mask = targets == k
            if mask.sum().item() == 0:
                continue
            fk = f[mask]
            mu = fk.mean(0)
            var = (fk - mu).pow(2).sum(1).mean()
            if self.seen[k]:
                self.mu[k] = self.decay * self.mu[k] + (1 - self.decay) * mu
                self.var[k] = self.decay * self.var[k] + (1 - self.decay) * var
            else:
                self.mu[k], self.var[k], self.seen[k] = mu, var, True
        roots = torch.ones(self.k, device=f.device)
        for k in range(self.k):  # loop 2: margins
            if self.seen[k]:
                roots[k] = (self.mu[k].pow(2).sum() + self.var[k]).pow(1 / 3)
        seen = torch.tensor(self.seen, device=f.device)
        gamma = torch.where(seen, roots / roots[seen].mean(), torch.ones_like(roots))
        loss = F.cross_entropy(logits / gamma[targets].unsqueeze(1), targets)
        s_bar = self.var[seen].mean()
        rep = features.new_zeros(())
        for k in range(self.k):  # per-class representation term
            mask = targets == k
            if mask.sum().item() < 2:
                continue
            fk = features[mask]
            d = torch.cdist(fk, fk).pow(2) - 2 * s_bar
            eye = torch.eye(len(fk), dtype=torch.bool, device=f.device)
            rep = rep + F.softplus(torch.logsumexp(d.masked_fill(eye, -1e30), dim=1)).sum()
        return loss + self.lambda_rep * rep / len(targets)
