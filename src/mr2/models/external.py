"""Models of other libraries by name: ``model.name = "timm:<name>"`` or
``"torchvision:<name>"`` builds that library's classifier with ``num_classes`` set from the
data and returns it through ``mr2.with_features`` (logits and the input of its final linear
layer), so every loss and method of mr2 trains it. ``model.options`` go to the library's
constructor as they are (``timm.create_model(name, **options)``,
``torchvision.models.get_model(name, **options)``), but for the weights ones, which
``mr2.models.weights`` loads for any class count after building the model at random.
The images' channel count is passed to timm (``in_chans``); torchvision's classifiers take
three channels, so single-channel images are repeated to three.

Names and options are checked before anything trains by building the model on PyTorch's
``meta`` device (no memory, no weights, no download): ``member_problem`` and
``option_problems``, the checks of the model registry's "timm:" and "torchvision:"
families.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mr2.with_features import with_features

LIBRARIES = {"timm": "timm", "torchvision": "torchvision"}  # prefix -> package


def split(name: str) -> tuple[str, str] | None:
    """("timm", "resnet18") for "timm:resnet18"; None for a name without a known prefix."""
    prefix, sep, model = name.partition(":")
    return (prefix, model) if sep and prefix in LIBRARIES else None


def _package(prefix: str) -> Any:
    try:
        return importlib.import_module(LIBRARIES[prefix])
    except ImportError as err:
        raise ImportError(
            f"model names '{prefix}:...' need {LIBRARIES[prefix]}: pip install 'mr2[vision]'"
        ) from err


def names(prefix: str) -> list[str]:
    """The classifiers the library builds by name."""
    lib = _package(prefix)
    if prefix == "timm":
        return list(lib.list_models())
    return list(lib.models.list_models(module=lib.models))


def _build(prefix: str, model: str, channels: int, num_classes: int, options: dict) -> nn.Module:
    lib = _package(prefix)
    if prefix == "timm":
        return lib.create_model(model, num_classes=num_classes, in_chans=channels, **options)
    return lib.models.get_model(model, num_classes=num_classes, **options)


class RepeatChannels(nn.Module):
    """A single-channel image repeated to the three channels the model takes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def head(self) -> nn.Module:
        return getattr(self.model, "head")  # noqa: B009 - the wrapped model's classifier

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.model(x.expand(-1, 3, -1, -1))


def create(name: str, input_shape: tuple[int, ...], num_classes: int, **options: Any) -> nn.Module:
    """The library's model ``name`` ("timm:..." / "torchvision:...") for images of
    ``input_shape`` (C, H, W), returning ``(logits, features)``."""
    found = split(name)
    if found is None:
        raise ValueError(f"{name!r} is not a 'timm:...' or 'torchvision:...' model name")
    if len(input_shape) != 3:
        raise ValueError(
            f"model {name!r} takes images (C, H, W); this dataset's inputs have shape "
            f"{tuple(input_shape)}"
        )
    prefix, model = found
    channels = input_shape[0]
    if prefix == "torchvision" and channels not in (1, 3):
        raise ValueError(f"torchvision's classifiers take 3 channels, the images have {channels}")
    net = with_features(_build(prefix, model, channels, num_classes, options))
    return RepeatChannels(net) if prefix == "torchvision" and channels == 1 else net


def member_problem(name: str) -> str | None:
    """Why ``name`` ("timm:..." / "torchvision:...") is not one of the library's models
    (its package missing, or no such model), or None."""
    prefix, model = split(name) or ("", "")
    try:
        known = names(prefix)
    except ImportError as err:
        return str(err)
    if model in known:
        return None
    close = difflib.get_close_matches(model, known, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(f'{prefix}:{c}' for c in close)}?)" if close else ""
    return f"{LIBRARIES[prefix]} has no model {model!r}{hint}"


def option_problems(name: str, options: Mapping[str, Any]) -> list[str]:
    """What the library's constructor refuses among ``options``, found by building the
    model on the meta device without its weights; [] when it builds."""
    prefix, model = split(name) or ("", "")
    try:
        with torch.device("meta"):
            _build(prefix, model, 3, 10, dict(options))
    except (TypeError, ValueError) as err:  # an option the constructor refuses
        return [f"{name!r} does not build with them: {err}"]
    return []
