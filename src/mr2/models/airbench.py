"""The fast CIFAR-10 network of Keller Jordan's airbench (``airbench94``): a 2x2 patch stem,
three conv-pool-BN-GELU blocks and a max-pooled head, 94 % on CIFAR-10 in seconds on one
A100 with its own loop. Here it is the model of the fast recipe; the loop, schedule and
augmentation are the engine's (no whitening initialisation, lookahead or test-time
flipping, so expect a little less than airbench's own numbers)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    """conv3x3 -> maxpool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding="same", bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(cout),
        nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding="same", bias=False),
        nn.BatchNorm2d(cout),
        nn.GELU(),
    )


class ScaledLinear(nn.Linear):
    """A bias-free linear layer whose output is multiplied by a fixed ``scale``."""

    def __init__(self, cin: int, cout: int, scale: float) -> None:
        super().__init__(cin, cout, bias=False)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * self.scale


class AirbenchNet(nn.Module):
    """Features: the max-pooled last block (``widths[-1]`` values); logits: a bias-free linear
    head scaled by ``head_scale`` (airbench's 1/9, which keeps early logits small)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        widths: Sequence[int] = (64, 256, 256),
        stem_width: int = 24,
        head_scale: float = 1 / 9,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"airbench takes (C, H, W) images, got input shape {input_shape}")
        if len(widths) != 3 or min(widths) < 1 or stem_width < 1:
            raise ValueError(f"airbench needs three positive widths, got {list(widths)}")
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], stem_width, 2), nn.GELU())
        blocks, cin = [], stem_width
        for w in widths:
            blocks.append(_conv_block(cin, w))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = ScaledLinear(cin, num_classes, head_scale)
        self.feature_dim = cin

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = torch.amax(self.blocks(self.stem(x)), dim=(2, 3))  # (B, widths[-1])
        return self.head(features), features
