"""The authors' MR² algorithm with the control flow of their ImageNet loss (method.md §3, §5).

For comparison in benchmarks only. Like BeierZhu/MR2 ``MRF-Imagenet/src/mrf_loss.py``: a
Python loop over all K classes to update the EMA of each class's squared mean norm and mean
squared deviation (boolean indexing: a host sync per class), margins from those EMAs, and a
second loop over all K classes for the representation term, each class forming its
(n_k, n_k, D) difference tensor. Written here from the paper's formulas; their bugs that do
not change the cost are fixed (the real K, a 2-norm s_bar, seen-class normalisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class LoopMR2:
    def __init__(
        self, num_classes: int, decay: float = 0.99, lambda_rep: float = 0.1, norm_p: float = 2.0
    ):
        self.k, self.decay, self.lambda_rep, self.p = num_classes, decay, lambda_rep, norm_p
        self.norm_ema = torch.zeros(num_classes)
        self.var_ema = torch.zeros(num_classes)

    def to(self, device: torch.device) -> LoopMR2:
        self.norm_ema, self.var_ema = self.norm_ema.to(device), self.var_ema.to(device)
        return self

    @torch.no_grad()
    def update(self, features: Tensor, targets: Tensor) -> None:
        for k in range(self.k):  # loop 1 over all classes
            fk = features[targets == k]  # boolean indexing: host sync
            if fk.size(0) == 0:
                continue
            mu = fk.mean(0)
            norm = mu.norm(self.p).square()
            var = (fk - mu).norm(self.p, dim=1).square().mean()
            if self.norm_ema[k] == 0:  # tensor truthiness: another sync
                self.norm_ema[k], self.var_ema[k] = norm, var
            else:
                self.norm_ema[k] = self.decay * self.norm_ema[k] + (1 - self.decay) * norm
                self.var_ema[k] = self.decay * self.var_ema[k] + (1 - self.decay) * var

    def __call__(self, logits: Tensor, features: Tensor, targets: Tensor) -> Tensor:
        self.update(features.detach(), targets)
        seen = self.norm_ema > 0
        roots = (self.norm_ema + self.var_ema).pow(1 / 3)
        gamma = torch.where(seen, roots / roots[seen].mean(), torch.ones_like(roots))
        loss = F.cross_entropy(logits / gamma[targets].unsqueeze(1), targets)
        s_bar = self.var_ema[seen].mean()  # 2-norm units only when p = 2 (their defect 3)
        rep = features.new_zeros(())
        for k in range(self.k):  # loop 2 over all classes
            fk = features[targets == k]
            if fk.size(0) < 2:
                continue
            dist = (fk.unsqueeze(1) - fk.unsqueeze(0)).square().sum(2)  # (n_k, n_k, D) tensor
            eye = torch.eye(len(fk), dtype=torch.bool, device=fk.device)
            z = (dist - 2 * s_bar).masked_fill(eye, float("-inf"))
            rep = rep + F.softplus(torch.logsumexp(z, dim=1)).sum()
        return loss + self.lambda_rep * rep / len(targets)
