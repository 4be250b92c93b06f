"""Models that return ``(logits, features)``; one registry: ``create(name, input_shape, K)``.

Besides mr2's own: ``"timm:<name>"`` and ``"torchvision:<name>"`` (``mr2.models.external``),
and the user's models, added with ``register(name, factory)``; ``mr2 --import MODULE``
(or a package's ``mr2.plugins`` entry point) registers them for the CLI.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch import nn

from mr2._registry import Entry, Option, Registry, signature_options
from mr2.models import contract, external, weights
from mr2.models.airbench import AirbenchNet
from mr2.models.cnn import SmallCNN
from mr2.models.contract import ModelWithFeatures
from mr2.models.linear import LinearProbe
from mr2.models.mlp import MLP
from mr2.models.resnet_cifar import ResNetCifar
from mr2.models.wrn import WideResNet
from mr2.with_features import with_features

EXCLUDED = ("input_shape", "num_classes")
WEIGHTS = Option("", ("str",))  # every model's: a weights file (mr2.models.weights)


def _with_weights(entry: Entry) -> dict[str, Option]:
    return {**signature_options(entry.factory, set(EXCLUDED)), "weights": WEIGHTS}


MODELS = Registry("model", exclude=EXCLUDED, options_of=_with_weights)


def _sizes(name: str, options: Mapping[str, Any]) -> list[str]:
    return problems(dict(options)) + weights.problems(name, options)


def _library_problems(name: str, options: Mapping[str, Any]) -> list[str]:
    """A library model's options: its weights (``mr2.models.weights``), then the rest as
    its constructor takes them."""
    found = weights.problems(name, options)
    if found:
        return found
    return external.option_problems(name, weights.split_options(name, options)[1])


def _own(name: str, factory: Callable[..., nn.Module], **kwargs: Any) -> None:
    MODELS.register(name, factory, check=_sizes, **kwargs)


_own("mlp", MLP)
_own("linear", LinearProbe)
_own("cnn", SmallCNN)
_own("airbench", AirbenchNet)
_own("resnet32", ResNetCifar, defaults={"depth": 32})
_own("resnet20", ResNetCifar, defaults={"depth": 20})
_own("wrn28_10", WideResNet, defaults={"depth": 28, "width": 10})
_own("wrn16_2", WideResNet, defaults={"depth": 16, "width": 2})
for _prefix, _package in external.LIBRARIES.items():
    MODELS.register(
        f"{_prefix}:",
        external.create,
        f"{_package}'s classifiers by name ({_prefix}:<name>; options go to its constructor)",
        family=True,
        needs=_package,
        member_problem=external.member_problem,
        check=_library_problems,
    )


def available() -> list[str]:
    return MODELS.available()


def options(name: str) -> set[str] | None:
    """The options model ``name`` accepts; None for a library's model ("timm:...",
    "torchvision:..."), whose options go to its constructor (checked by building it on the
    meta device: ``external.option_problems``)."""
    return None if MODELS.entry(name).family else MODELS.options(name)


def register(
    name: str,
    factory: Callable[..., nn.Module],
    description: str = "",
    *,
    returns_features: bool = False,
) -> Callable[..., nn.Module]:
    """Add the user's model ``name``: ``factory(input_shape, num_classes, **options)``
    returns the module. Unless ``returns_features``, its output is taken as logits and the
    features are read at its final linear layer (``mr2.with_features``). Its keyword
    arguments are the options ``model.options`` may set (checked before training).

    Example:
        >>> import torch
        >>> def tiny(input_shape, num_classes, width=16):
        ...     return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(
        ...         int(torch.tensor(input_shape).prod()), width), torch.nn.ReLU(),
        ...         torch.nn.Linear(width, num_classes))
        >>> _ = register("doc_tiny", tiny)
        >>> logits, features = create("doc_tiny", (1, 4, 4), 3, width=8)(torch.zeros(2, 1, 4, 4))
        >>> tuple(logits.shape), tuple(features.shape)
        ((2, 3), (2, 8))
    """
    if ":" in name:
        raise ValueError(f"model names with ':' are a library's ({name!r}); choose another")
    built = factory if returns_features else partial(_with_features, factory)
    typed = signature_options(factory, MODELS.exclude)  # the wrapper hides the signature
    typed["weights"] = WEIGHTS
    MODELS.register(name, built, description, options=typed, check=_sizes)
    return built


def _with_features(factory: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    return with_features(factory(*args, **kwargs))


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
    """Build model ``name``; ``kwargs`` (e.g. width) override its defaults; ``weights``
    (and timm's ``pretrained``) load starting weights for any class count
    (``mr2.models.weights``), saying on stderr what was loaded, replaced and left random."""
    entry = MODELS.entry(name)
    errors = entry.check(name, kwargs) if entry.check and not entry.family else []
    if errors:
        raise ValueError("; ".join(errors))
    spec, rest = weights.split_options(name, kwargs)
    model = MODELS.create(name, tuple(input_shape), num_classes, **rest)
    broken = contract.problems(model, name, num_classes)
    if broken:
        raise ValueError("; ".join(broken))
    report = weights.apply(model, name, spec)
    if report is not None:
        print(report.text(), file=sys.stderr, flush=True)
    return model


__all__ = [
    "MLP",
    "MODELS",
    "AirbenchNet",
    "LinearProbe",
    "ModelWithFeatures",
    "ResNetCifar",
    "SmallCNN",
    "WideResNet",
    "available",
    "create",
    "options",
    "problems",
    "register",
]
