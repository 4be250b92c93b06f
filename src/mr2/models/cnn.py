"""A small CNN for 28x28 (or other small) grey or colour images."""

from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """[conv3x3 -> BN -> ReLU -> maxpool] x 2 (width, 2 width channels) -> global average
    pool -> features (2 width) -> Linear head."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> None:
        super().__init__()
        c = input_shape[0]

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(
            block(c, width), block(width, 2 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(2 * width, num_classes)
        self.feature_dim = 2 * width

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x)  # (B, 2 width)
        return self.head(features), features
