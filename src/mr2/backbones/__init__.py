"""Pre-trained backbones (extra ``vision``): CLIP (open_clip), MAE (timm), MoCo v2
(torchvision), each wrapped to return ``(logits, features)`` with its preprocessing."""

from __future__ import annotations

import inspect

from torch import nn

from mr2.backbones.base import Backbone, Preprocess, state_sha256
from mr2.backbones.clip import create_clip
from mr2.backbones.mae import create_mae
from mr2.backbones.moco import convert_moco_checkpoint, create_moco
from mr2.backbones.wiseft import interpolate
from mr2.backbones.zeroshot import imagenet_class_names, templates, zero_shot_weights

BACKBONES = {"clip": create_clip, "mae": create_mae, "moco_v2": create_moco}


def available() -> list[str]:
    return sorted(BACKBONES)


def options(name: str) -> set[str]:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(available())}")
    params = inspect.signature(BACKBONES[name]).parameters.values()
    return {p.name for p in params if p.kind == p.KEYWORD_ONLY} - {"class_names"}


def create(
    name: str, num_classes: int, *, class_names: list[str] | None = None, **kwargs
) -> nn.Module:
    """Backbone ``name`` with a ``num_classes`` head; ``kwargs`` are its options."""
    unknown = sorted(set(kwargs) - options(name))
    if unknown:
        raise ValueError(
            f"backbone {name!r} does not take option(s) {unknown}; "
            f"accepted: {sorted(options(name))}"
        )
    return BACKBONES[name](num_classes, class_names=class_names, **kwargs)


__all__ = [
    "BACKBONES",
    "Backbone",
    "Preprocess",
    "available",
    "convert_moco_checkpoint",
    "create",
    "imagenet_class_names",
    "interpolate",
    "options",
    "state_sha256",
    "templates",
    "zero_shot_weights",
]
