"""Models that return ``(logits, features)``; one registry: ``create(name, input_shape, K)``."""

from __future__ import annotations

from torch import nn

from mr2._registry import Registry
from mr2.models.airbench import AirbenchNet
from mr2.models.cnn import SmallCNN
from mr2.models.linear import LinearProbe
from mr2.models.mlp import MLP
from mr2.models.resnet_cifar import ResNetCifar
from mr2.models.wrn import WideResNet

MODELS = Registry("model", exclude=("input_shape", "num_classes"))
MODELS.register("mlp", MLP)
MODELS.register("linear", LinearProbe)
MODELS.register("cnn", SmallCNN)
MODELS.register("airbench", AirbenchNet)
MODELS.register("resnet32", ResNetCifar, defaults={"depth": 32})
MODELS.register("resnet20", ResNetCifar, defaults={"depth": 20})
MODELS.register("wrn28_10", WideResNet, defaults={"depth": 28, "width": 10})
MODELS.register("wrn16_2", WideResNet, defaults={"depth": 16, "width": 2})


def available() -> list[str]:
    return MODELS.available()


def options(name: str) -> set[str]:
    """The options model ``name`` accepts."""
    return MODELS.options(name)


SIZES = ("width", "depth", "stem_width")  # options that count layers or channels


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def problems(options: dict) -> list[str]:
    """Size options that no model can be built with (checked before any data loads)."""
    out = [
        f"model.options.{key} must be a positive integer, got {value!r}"
        for key, value in options.items()
        if key in SIZES and not _positive(value)
    ]
    widths = options.get("widths")
    if widths is not None and not (
        isinstance(widths, (list, tuple)) and widths and all(map(_positive, widths))
    ):
        out.append(f"model.options.widths must be a list of positive integers, got {widths!r}")
    return out


def create(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> nn.Module:
    """Build model ``name``; ``kwargs`` (e.g. width) override its defaults."""
    errors = problems(kwargs)
    if errors:
        raise ValueError("; ".join(errors))
    return MODELS.create(name, tuple(input_shape), num_classes, **kwargs)


__all__ = [
    "MLP",
    "MODELS",
    "AirbenchNet",
    "LinearProbe",
    "ResNetCifar",
    "SmallCNN",
    "WideResNet",
    "available",
    "create",
    "options",
    "problems",
]
