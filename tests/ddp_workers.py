"""Worker functions for the multi-process tests (importable by spawned children)."""

from __future__ import annotations

import gc

import torch

from mr2 import MR2Loss


def global_batch(b: int = 30, k: int = 4, d: int = 6, step: int = 0):
    g = torch.Generator().manual_seed(100 + step)
    f = torch.randn(b, d, generator=g) * (1 + torch.randint(0, 3, (b, 1), generator=g))
    y = torch.randint(0, k, (b,), generator=g)
    return f @ torch.randn(d, k, generator=g), f, y


def bounds(rank: int, sizes: list[int]) -> slice:
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def mr2_worker(rank: int, world: int, sizes: list[int], gather: bool, steps: int = 2):
    """Each rank sees its slice of the same global batches."""
    loss_fn = MR2Loss(4, lambda_rep=0.5, ema_decay=0.8, gather_features=gather, reduction="none")
    out = {}
    for step in range(steps):
        logits, f, y = global_batch(b=sum(sizes), step=step)
        part = bounds(rank, sizes)
        feats = f[part].clone().requires_grad_(True)
        per_sample = loss_fn(logits[part], feats, y[part])
        per_sample.mean().backward()
        out[step] = {"per_sample": per_sample.detach(), "grad": feats.grad}
    out["margins"], out["s_bar"] = loss_fn.margins(), loss_fn.s_bar()
    out["state"] = loss_fn.state_dict()
    return out


def metric_worker(rank: int, world: int, sizes: list[int]):
    """ClasswiseAccuracy over uneven shards of the same predictions."""
    from mr2.metrics import ClasswiseAccuracy

    g = torch.Generator().manual_seed(7)
    n = sum(sizes)
    targets = torch.randint(0, 5, (n,), generator=g)
    preds = torch.where(
        torch.rand(n, generator=g) < 0.6, targets, torch.randint(0, 5, (n,), generator=g)
    )
    part = bounds(rank, sizes)
    metric = ClasswiseAccuracy(5)
    for chunk in torch.arange(part.start, part.stop).split(4):
        metric.update(preds[chunk], targets[chunk])
    result = metric.compute()
    return {
        "accuracy": result.accuracy,
        "confusion": result.confusion,
        "overall": result.overall,
        "preds": preds,
        "targets": targets,
    }


def group_dro_worker(rank: int, world: int, sizes: list[int], steps: int = 2):
    """GroupDRO on this rank's slice of the same global batches (equal slices, as DDP has)."""
    from mr2.losses import GroupDRO

    loss_fn = GroupDRO(4, step_size=0.5)
    out = {}
    for step in range(steps):
        logits, _, y = global_batch(b=sum(sizes), step=step)
        part = bounds(rank, sizes)
        local = logits[part].clone().requires_grad_(True)
        loss = loss_fn(local, None, y[part])
        loss.backward()
        out[step] = {"loss": loss.detach(), "grad": local.grad}
    out["q"] = loss_fn.q.clone()
    return out


def with_features_worker(rank: int, world: int):
    """DDP over with_features(a plain Sequential) with MR² (features gathered): each rank
    takes its half of the same batch; the synced gradients equal one process's."""
    from torch import nn

    from mr2 import with_features

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    model = with_features(net)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    loss_fn = MR2Loss(4, lambda_rep=0.5, gather_features=world > 1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 6, generator=g), torch.arange(16) % 4
    part = slice(rank * 16 // world, (rank + 1) * 16 // world)
    logits, features = model(x[part])
    loss_fn(logits, features, y[part]).backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    if world > 1:  # DDP's reducer goes while the process group is alive (clean shutdown)
        del model, logits, features
        gc.collect()
        torch.distributed.barrier()
    return {"grads": grads}


def disparity_metric_worker(rank: int, world: int):
    """DisparityMetric over uneven shards of the same predictions (torchmetrics' sync)."""
    from mr2.metrics.disparity_metric import DisparityMetric
    from test_disparity_metric import predictions

    logits, y = predictions()
    cut = 110 if rank == 0 else 300
    start = 0 if rank == 0 else 110
    metric = DisparityMetric(7, per_class=True)
    metric.update(logits[start:cut], y[start:cut])
    out = metric.compute()
    return {"per_class": out["per_class"], "worst_class": float(out["worst_class"])}


def failing_worker(rank: int, world: int):
    """Rank 1 fails at once while rank 0 waits in a collective it will never complete."""
    if rank == 1:
        raise ValueError("planted failure of rank 1")
    torch.distributed.all_reduce(torch.ones(1))
    return {}
