"""The logits a finished run keeps (``mr2.records.logits``): its selected model's validation and
test logits, each sample once across processes, and the size guard checked before training."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mr2 import distributed
from mr2.data import Dataset, Split
from mr2.engine.config import RunConfig
from mr2.engine.context import Context
from mr2.engine.evaluate import passes
from mr2.records.logits import RunLogits, SplitLogits, size_mb


def size_problem(cfg: RunConfig, dataset: Dataset) -> str | None:
    """Why this run's logits would be too large to keep, or None."""
    if not cfg.train.keep_logits:
        return None
    n = len(dataset.val) + len(dataset.test)
    mb = size_mb(n, dataset.num_classes)
    if mb <= cfg.train.logits_max_mb:
        return None
    return (
        f"keeping this run's validation and test logits ({n:,} samples x "
        f"{dataset.num_classes:,} classes) takes {mb:,.1f} MB, above train.logits_max_mb = "
        f"{cfg.train.logits_max_mb:g}: raise it (--set train.logits_max_mb={math.ceil(mb)}) or set "
        "train.keep_logits = false (then no offsets can be fit after training)"
    )


def split_logits(
    model: nn.Module, split: Split, num_classes: int, cfg: RunConfig, ctx: Context
) -> SplitLogits:
    """``model``'s logits on ``split`` (``evaluate.passes``: rank r computes samples r,
    r + W, ...; the rows are summed over processes, each filled by one)."""
    out = torch.zeros(len(split), num_classes, device=ctx.device)
    batches = passes(model, split, cfg.train.eval_batch_size, ctx.device, ctx.amp_dtype)
    for chunk, logits, _, _ in batches:
        out[chunk.to(ctx.device)] = logits
    full = distributed.all_reduce_sum(out).cpu().numpy()
    return SplitLogits(full, np.asarray(split.y, dtype=np.int64))


def run_logits(model: nn.Module, dataset: Dataset, cfg: RunConfig, ctx: Context) -> RunLogits:
    """The validation (if any) and test logits of the run's selected model."""
    k = dataset.num_classes
    val = split_logits(model, dataset.val, k, cfg, ctx) if len(dataset.val) else None
    return RunLogits(val, split_logits(model, dataset.test, k, cfg, ctx))
