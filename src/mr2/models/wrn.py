"""Wide ResNet (Zagoruyko & Komodakis, 2016): WRN-28-10 is depth 28, widen factor 10."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class WideBlock(nn.Module):
    """Pre-activation block: BN -> ReLU -> conv3x3 -> (dropout) -> BN -> ReLU -> conv3x3."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = (
            None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv1(act)
        out = F.dropout(F.relu(self.bn2(out)), self.dropout, self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(act))


class WideResNet(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 28,
        width: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        chans = [16, 16 * width, 32 * width, 64 * width]
        self.stem = nn.Conv2d(input_shape[0], chans[0], 3, 1, 1, bias=False)
        blocks, cin = [], chans[0]
        for i, c in enumerate(chans[1:]):
            for j in range(n):
                blocks.append(WideBlock(cin, c, 2 if (i > 0 and j == 0) else 1, dropout))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.pool(F.relu(self.bn(self.blocks(self.stem(x)))))  # (B, 64 width)
        return self.head(features), features
