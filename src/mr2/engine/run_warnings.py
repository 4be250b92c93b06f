"""What a run's history says went wrong, said when it ends (and in ``mr2 report``): a
training accuracy that ended near chance, and MR²'s representation term outweighing its
logit term in the gradient the features receive (``rep_gradient_ratio``, measured on one
fixed training batch at the end of every epoch)."""

from __future__ import annotations

import torch

from mr2.engine.run import Run
from mr2.losses.base import ClassLoss
from mr2.losses.registry import collapse_advice
from mr2.records.result import CHANCE_FACTOR, EpochRecord


def rep_gradient_ratio(run: Run) -> float | None:
    """The loss's ``feature_gradient_ratio`` on the first training batch (MR²: ||d(lambda_rep
    l_s)/df|| / ||d l_gamma/df||), the model in eval mode and no parameter gradient
    written; None for a loss without such a ratio and for frozen features (a probe)."""
    if not isinstance(run.loss_fn, ClassLoss):
        return None
    split, device = run.dataset.train, run.ctx.device
    idx = torch.arange(min(len(split.y), run.cfg.train.batch_size))
    x, y = split.x[idx].to(device), split.y[idx].to(device)
    was_training = run.model.training
    run.model.eval()
    try:
        return run.loss_fn.feature_gradient_ratio(lambda: run.model(x), y)
    finally:
        run.model.train(was_training)


def run_warnings(history: list[EpochRecord], num_classes: int, loss: str) -> list[str]:
    """Warnings about a finished run of loss ``loss`` from its last history row."""
    if not history:
        return []
    last, found = history[-1], []
    if last.train_acc is not None and last.train_acc < CHANCE_FACTOR / num_classes:
        found.append(
            f"training ended at {100 * last.train_acc:.1f} % training accuracy (chance "
            f"{100 / num_classes:.1f} %): the run did not train; {collapse_advice(loss)}."
        )
    if last.rep_grad_ratio is not None and last.rep_grad_ratio > 1:
        found.append(
            f"MR²'s representation term dominates the features' gradient at the end "
            f"({last.rep_grad_ratio:.2f}x the logit term's): lower lambda_rep."
        )
    return found
