"""A deployable model that carries post-hoc class offsets: its forward returns the wrapped
model's logits plus the offsets (a buffer, saved in its state_dict); ``torch.export`` and
TorchScript take it."""

from __future__ import annotations

from torch import Tensor, nn


class OffsetModel(nn.Module):
    """``model(x) + offsets``; with ``features`` the wrapped model returns (logits,
    features) and this returns (logits + offsets, features)."""

    def __init__(self, model: nn.Module, offsets: Tensor, features: bool = False) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("offsets", offsets.detach().clone().float())
        self.features = features

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        logits = out[0] if self.features else out
        return logits + self.offsets.to(logits.dtype)
