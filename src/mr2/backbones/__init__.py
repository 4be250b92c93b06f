"""Pre-trained backbones (extra ``vision``): CLIP (open_clip), MAE (timm), MoCo v2
(torchvision), each wrapped to return ``(logits, features)`` with its preprocessing."""

from __future__ import annotations

from mr2._registry import Registry
from mr2.backbones.base import Backbone, Preprocess, state_sha256
from mr2.backbones.clip import create_clip
from mr2.backbones.mae import create_mae
from mr2.backbones.moco import convert_moco_checkpoint, create_moco
from mr2.backbones.wiseft import interpolate
from mr2.backbones.zeroshot import imagenet_class_names, templates, zero_shot_weights

BACKBONES = Registry("backbone", exclude=("num_classes", "class_names"))
BACKBONES.register("clip", create_clip, needs="open_clip")
BACKBONES.register("mae", create_mae, needs="timm")
BACKBONES.register("moco_v2", create_moco, needs="torchvision")


def available() -> list[str]:
    return BACKBONES.available()


def missing_package(name: str) -> str | None:
    """The package backbone ``name`` is built with, if it is not installed (else None)."""
    return BACKBONES.missing_package(name)


def options(name: str) -> set[str]:
    return BACKBONES.options(name)


def create(
    name: str, num_classes: int, *, class_names: list[str] | None = None, **kwargs
) -> Backbone:
    """Backbone ``name`` with a ``num_classes`` head; ``kwargs`` are its options."""
    BACKBONES.check_options(name, kwargs)
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
    "missing_package",
    "options",
    "state_sha256",
    "templates",
    "zero_shot_weights",
]
