"""Batched augmentation on tensors (no worker processes): random crop with zero padding and
horizontal flip, the standard CIFAR recipe, drawn from an explicit generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop_flip(
    x: Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True
) -> Tensor:
    """x: (N, C, H, W) -> same shape; each image shifted by up to ``padding`` pixels and
    mirrored with probability 1/2. The random draws come from ``generator`` (a CPU one) and
    the work happens on x's device, so a batch on the GPU is augmented exactly as on the
    CPU, with no per-sample Python."""
    n, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])[:, None, :, None]  # (N,1,H,1)
    cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])[:, None, None, :]  # (N,1,1,W)
    out = padded[
        torch.arange(n, device=dev)[:, None, None, None],
        torch.arange(x.shape[1], device=dev)[None, :, None, None],
        rows,
        cols,
    ]
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(dev)
        out = torch.where(mirror[:, None, None, None], out.flip(3), out)
    return out


def auto_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """AutoAugment with the CIFAR-10 policy (torchvision's ``AutoAugment``), drawn per
    image as the authors' CIFAR script does. x: (N, C, H, W) floats in [0, 1], on any
    device. The policy's random choices come from a seed drawn from ``generator``, so a
    run is reproducible and resumes exactly."""
    try:
        from torchvision.transforms import v2
    except ImportError as err:  # pragma: no cover - torchvision is in the vision extra
        raise ImportError("data.autoaugment needs torchvision: pip install 'mr2[vision]'") from err
    policy = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    images = (x * 255).round().clamp(0, 255).to(torch.uint8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = torch.stack([policy(img) for img in images])
    return out.to(x.dtype) / 255
