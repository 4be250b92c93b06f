"""The few collective operations that losses and metrics share.

Every helper is a no-op on a single process (torch.distributed not initialised), so the
same code runs unchanged in a plain loop, under ``torchrun`` with gloo on CPU, or with
NCCL on GPUs. Reductions always *sum sufficient statistics*; nothing here averages
per-rank averages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup


def is_distributed(group: ProcessGroup | None = None) -> bool:
    """True when torch.distributed is initialised and has more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def world_size(group: ProcessGroup | None = None) -> int:
    return dist.get_world_size(group) if is_distributed(group) else 1


def rank(group: ProcessGroup | None = None) -> int:
    return dist.get_rank(group) if is_distributed(group) else 0


def all_reduce_sum(tensor: Tensor, group: ProcessGroup | None = None) -> Tensor:
    """Sum ``tensor`` over all processes (in place, no gradient) and return it."""
    if is_distributed(group):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    return tensor


class _AllGather(torch.autograd.Function):
    """all_gather of equal-size tensors; backward sums every rank's gradient and keeps the
    rows of this rank (an all-reduce: simple and supported by gloo and NCCL alike)."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group: ProcessGroup | None) -> Tensor:
        ctx.group, ctx.rank, ctx.n = group, dist.get_rank(group), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n], None


def all_gather_with_grad(tensor: Tensor, group: ProcessGroup | None = None) -> tuple[Tensor, int]:
    """Concatenate ``tensor`` (N_r, ...) from every rank along dim 0, keeping gradients.

    Ranks may hold different N_r (the sizes are exchanged first, which costs one small
    collective and, on CUDA, one host sync). The backward pass sends each rank the
    gradient of its own rows summed over all ranks' losses, which is what DDP's gradient
    averaging expects.

    Returns:
        (gathered (sum_r N_r, ...), offset of this rank's rows in the gathered tensor).
    """
    if not is_distributed(group):
        return tensor, 0
    n = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, n, group=group)
    sizes_list = [int(s.item()) for s in sizes]
    n_max = max(sizes_list)
    padded = tensor
    if tensor.shape[0] < n_max:
        pad = tensor.new_zeros((n_max - tensor.shape[0], *tensor.shape[1:]))
        padded = torch.cat([tensor, pad], dim=0)
    gathered = _AllGather.apply(padded, group)
    parts = gathered.split(n_max)
    gathered = torch.cat([p[:s] for p, s in zip(parts, sizes_list, strict=True)], dim=0)
    offset = sum(sizes_list[: rank(group)])
    return gathered, offset


def init_from_env(device_type: str = "cpu") -> bool:
    """Initialise the default process group when launched by torchrun (WORLD_SIZE > 1):
    NCCL for CUDA, gloo otherwise. Returns True when running distributed."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend)
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def barrier(group: ProcessGroup | None = None) -> None:
    if is_distributed(group):
        dist.barrier(group)
