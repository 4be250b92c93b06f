"""Optimisers and learning-rate schedules by name (``optim.name``, ``optim.schedule``): each
a registry entry, so config checks and the docs list what exists. Schedules: linear
warm-up, then cosine to zero or constant."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from mr2._registry import Registry
from mr2.engine.config import OptimConfig

OPTIMISERS = Registry("optimiser")
SCHEDULES = Registry("schedule")
Groups = list[dict]


def _sgd(groups: Groups, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD with momentum (``optim.momentum``, ``optim.nesterov``)"""
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def _adamw(groups: Groups, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW (``optim.betas``)"""
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]))


def _cosine(progress: float) -> float:
    """cosine from the peak to 0 at the end"""
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _constant(progress: float) -> float:
    """the peak learning rate throughout"""
    return 1.0


OPTIMISERS.register("sgd", _sgd, options=set())
OPTIMISERS.register("adamw", _adamw, options=set())
SCHEDULES.register("cosine", _cosine, options=set())
SCHEDULES.register("constant", _constant, options=set())


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation parameters (1-D tensors).
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return OPTIMISERS.create(cfg.name, groups, cfg)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    shape: Callable[[float], float] = SCHEDULES[schedule]
    return shape((step - warmup) / max(1, total - warmup))


def warmup_steps(cfg: OptimConfig, steps_per_epoch: int) -> int:
    return cfg.warmup_steps if cfg.warmup_steps > 0 else round(cfg.warmup_epochs * steps_per_epoch)


def problems(cfg: OptimConfig) -> list[str]:
    """Unknown optimiser or schedule names (their values' ranges: ``config_rules``)."""
    return [
        *OPTIMISERS.problems(cfg.name, "optim.name"),
        *SCHEDULES.problems(cfg.schedule, "optim.schedule"),
    ]
