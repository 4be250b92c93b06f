"""How hard MR²'s representation term pulls on the features against its logit term: the
ratio of the gradient norms each sends to the features on one batch (the engine records it
per epoch and warns when the representation term dominates)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from mr2.functional import logit_margin_cross_entropy


def term_ratio(
    per_sample: Callable[[Tensor, Tensor, Tensor], Tensor],
    margins: Tensor | None,
    logits: Tensor,
    features: Tensor,
    targets: Tensor,
) -> float:
    """||d(lambda_rep l_s)/df|| / ||d l_gamma/df||: ``per_sample`` the whole loss per sample,
    ``margins`` the logit term's (None: plain cross-entropy); inf if the logit term sends
    no gradient."""
    if margins is not None:
        logit = logit_margin_cross_entropy(logits, targets, margins.to(logits.device))
    else:
        logit = F.cross_entropy(logits, targets)
    total = per_sample(logits, features, targets).mean()
    (g_logit,) = torch.autograd.grad(logit, features, retain_graph=True)
    (g_total,) = torch.autograd.grad(total, features)
    logit_norm = float(g_logit.norm())
    rep_norm = float((g_total - g_logit).norm())  # gradients add: the rest is lambda_rep l_s
    return rep_norm / logit_norm if logit_norm > 0 else float("inf")
