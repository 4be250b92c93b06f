"""A linear probe: the classifier trained on frozen, cached backbone features."""

from __future__ import annotations

from torch import Tensor, nn


class LinearProbe(nn.Module):
    """``forward(f) -> (head(f), f)``: the inputs are the (frozen) features."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"a linear probe takes feature vectors, got inputs {input_shape}")
        self.feature_dim = int(input_shape[0])
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(x), x
