"""The model contract: what mr2 trains, written down once (``ModelWithFeatures``) and
checked when a model is built (``problems``), so a registered model that breaks it is named
with what it lacks before anything trains."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class ModelWithFeatures(Protocol):
    """What ``mr2.models.create`` returns and the engine trains.

    - ``forward(x)`` returns ``(logits, features)``: logits (B, K), features (B, D), the
      input of the final linear layer (MR²'s statistics and every feature term read them).
    - ``head``: that final layer, an ``nn.Linear`` from D features to K logits (loss
      presets read D from it, linear probing and WiSE-FT's zero-shot head replace it).

    ``mr2.models.register(name, factory)`` wraps a plain classifier that returns logits so
    that it keeps this contract (``mr2.with_features`` finds its last Linear); a factory
    registered with ``returns_features=True`` must keep it itself.
    """

    head: nn.Module

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


def problems(model: nn.Module, name: str, num_classes: int) -> list[str]:
    """What ``model`` (built as ``name`` for ``num_classes`` classes) lacks of the contract."""
    head = getattr(model, "head", None)
    if head is None:
        return [
            f"model {name!r} has no attribute 'head' (the nn.Linear from its features to its "
            "logits: mr2.models.contract.ModelWithFeatures); give it one, or register it "
            "without returns_features=True so that mr2 finds its last Linear"
        ]
    if not isinstance(head, nn.Linear):
        return [f"model {name!r}: 'head' must be an nn.Linear, got {type(head).__name__}"]
    if head.out_features != num_classes:
        return [
            f"model {name!r}: 'head' maps to {head.out_features} outputs but the data has "
            f"{num_classes} classes"
        ]
    return []
