"""Models that return ``(logits, features)``; one registry: ``create(name, input_shape, K)``."""

from __future__ import annotations

import inspect

from torch import nn

from mr2.models.cnn import SmallCNN
from mr2.models.linear import LinearProbe
from mr2.models.mlp import MLP
from mr2.models.resnet_cifar import ResNetCifar
from mr2.models.wrn import WideResNet

MODELS = {
    "mlp": (MLP, {}),
    "linear": (LinearProbe, {}),
    "cnn": (SmallCNN, {}),
    "resnet32": (ResNetCifar, {"depth": 32}),
    "resnet20": (ResNetCifar, {"depth": 20}),
    "wrn28_10": (WideResNet, {"depth": 28, "width": 10}),
    "wrn16_2": (WideResNet, {"depth": 16, "width": 2}),
}


def available() -> list[str]:
    return sorted(MODELS)


def options(name: str) -> set[str]:
    """The options model ``name`` accepts."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    return set(inspect.signature(MODELS[name][0]).parameters) - {"input_shape", "num_classes"}


def create(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> nn.Module:
    """Build model ``name``; ``kwargs`` (e.g. width) override its defaults."""
    accepted = options(name)
    cls, defaults = MODELS[name]
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"model {name!r} does not take option(s) {unknown}; accepted: {sorted(accepted)}"
        )
    return cls(tuple(input_shape), num_classes, **{**defaults, **kwargs})


__all__ = [
    "MLP",
    "MODELS",
    "LinearProbe",
    "ResNetCifar",
    "SmallCNN",
    "WideResNet",
    "available",
    "create",
    "options",
]
