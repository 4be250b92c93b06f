"""What a run's history says went wrong, said when it ends (and in ``mr2 report``): a
training accuracy that ended near chance, and MR²'s representation term outweighing its
logit term in the gradient the features receive (``rep_gradient_ratio``, measured on one
fixed training batch at the end of every epoch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mr2.engine.run import Run
from mr2.functional import logit_margin_cross_entropy
from mr2.losses import MR2Loss
from mr2.result import CHANCE_FACTOR, EpochRecord


def rep_gradient_ratio(run: Run) -> float | None:
    """||d(lambda_rep l_s)/df|| / ||d l_gamma/df|| on the first training batch (the model in
    eval mode, MR²'s statistics untouched, no parameter gradient written); None for any
    other loss, lambda_rep = 0 or frozen features (a linear probe)."""
    loss_fn = run.loss_fn
    if not isinstance(loss_fn, MR2Loss) or loss_fn.lambda_rep == 0:
        return None
    split, device = run.dataset.train, run.ctx.device
    idx = torch.arange(min(len(split.y), run.cfg.train.batch_size))
    x, y = split.x[idx].to(device), split.y[idx].to(device)
    was_training, gather = run.model.training, loss_fn.gather_features
    run.model.eval()
    loss_fn.gather_features = False  # this process's batch alone: no collective here
    try:
        with torch.enable_grad(), loss_fn.statistics_frozen():
            logits, features = run.model(x)
            if not features.requires_grad:  # frozen features (a probe): the term is constant
                return None
            logits, features = logits.float(), features.float()
            if loss_fn.logit_margins:
                logit = logit_margin_cross_entropy(logits, y, loss_fn.margins().to(device))
            else:
                logit = F.cross_entropy(logits, y)
            total = loss_fn.per_sample(logits, features, y).mean()
            (g_logit,) = torch.autograd.grad(logit, features, retain_graph=True)
            (g_total,) = torch.autograd.grad(total, features)
    finally:
        run.model.train(was_training)
        loss_fn.gather_features = gather
    logit_norm = float(g_logit.norm())
    rep_norm = float((g_total - g_logit).norm())  # gradients add: the rest is lambda_rep l_s
    return rep_norm / logit_norm if logit_norm > 0 else float("inf")


def run_warnings(history: list[EpochRecord], num_classes: int) -> list[str]:
    """Warnings about a finished run from its last history row."""
    if not history:
        return []
    last, found = history[-1], []
    if last.train_acc is not None and last.train_acc < CHANCE_FACTOR / num_classes:
        found.append(
            f"training ended at {100 * last.train_acc:.1f} % training accuracy (chance "
            f"{100 / num_classes:.1f} %): the run did not train. With MR²'s scale-free "
            "representation term keep lambda_rep at 0.01-0.03 (0.3 collapsed our studies)."
        )
    if last.rep_grad_ratio is not None and last.rep_grad_ratio > 1:
        found.append(
            f"MR²'s representation term dominates the features' gradient at the end "
            f"({last.rep_grad_ratio:.2f}x the logit term's): lower lambda_rep."
        )
    return found
