"""ResNet-(6n+2) for CIFAR (He et al., 2016, section 4.2); ResNet-32 is n = 5.

Shortcuts where the shape changes: option "A" (He et al.'s CIFAR networks and the
LDAM-DRW ResNet-32 the MR² authors train: the input subsampled by 2 and zero-padded with
the new channels, no parameters, 0.46 M for ResNet-32) or "B" (a 1x1 projection + BN)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class PadShortcut(nn.Module):
    """Option A: every ``stride``-th pixel, the extra channels zero (split evenly)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if (stride != 1 or cin != cout) and shortcut == "A":
            self.shortcut = PadShortcut(cin, cout, stride)
        elif stride != 1 or cin != cout:  # option B: projection shortcut
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetCifar(nn.Module):
    """Three stages of n blocks (16, 32, 64 channels x ``width``) -> global average pool."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 32,
        width: int = 1,
        shortcut: str = "B",
    ) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n + 2, got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(
                f"shortcut must be 'A' (zero-padded) or 'B' (projection), got {shortcut!r}"
            )
        n = (depth - 2) // 6
        chans = [16 * width, 32 * width, 64 * width]
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], chans[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(chans[0]),
            nn.ReLU(inplace=True),
        )
        blocks, cin = [], chans[0]
        for i, c in enumerate(chans):
            for j in range(n):
                blocks.append(BasicBlock(cin, c, 2 if (i > 0 and j == 0) else 1, shortcut))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.pool(self.blocks(self.stem(x)))  # (B, 64 width)
        return self.head(features), features
