"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import math

from torch import Tensor, nn


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU] x depth -> features (width) -> Linear head."""

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, width: int = 256, depth: int = 2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d_in = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.ReLU(inplace=True)]
            d_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d_in, num_classes)
        self.feature_dim = d_in

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x)  # (B, width)
        return self.head(features), features
