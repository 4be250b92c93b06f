"""MoCo v2 ResNet encoders: torchvision's ResNet plus a converter for the official MoCo
checkpoint layout (``state_dict`` with ``module.encoder_q.*`` keys, MLP head ``fc.*``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mr2.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone, Preprocess

PREFIX = "module.encoder_q."
URLS = {
    "moco_v2_800ep": "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/"
    "moco_v2_800ep_pretrain.pth.tar",
    "moco_v2_200ep": "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_200ep/"
    "moco_v2_200ep_pretrain.pth.tar",
}


def convert_moco_checkpoint(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The query encoder's weights under torchvision ResNet names: keep ``module.encoder_q.*``
    without the prefix, drop its projection head (``fc.*``), the key encoder and the queue."""
    state = checkpoint.get("state_dict", checkpoint)
    out = {
        k[len(PREFIX) :]: v
        for k, v in state.items()
        if k.startswith(PREFIX) and not k.startswith(PREFIX + "fc.")
    }
    if not out:
        raise ValueError(f"no '{PREFIX}*' keys: not a MoCo checkpoint")
    return out


def _load(weights: str) -> dict[str, torch.Tensor]:
    if weights in URLS or weights.startswith(("http://", "https://")):
        obj = torch.hub.load_state_dict_from_url(URLS.get(weights, weights), map_location="cpu")
    elif Path(weights).is_file():
        obj = torch.load(weights, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(
            f"MoCo weights {weights!r}: no such file, URL or name ({sorted(URLS)})"
        )
    state = obj.get("state_dict", obj)
    if any(k.startswith(PREFIX) for k in state):
        return convert_moco_checkpoint(obj)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}  # torchvision layout


def create_moco(
    num_classes: int,
    *,
    arch: str = "resnet50",
    weights: str = "",
    image_size: int = 224,
    class_names: list[str] | None = None,
) -> Backbone:
    """A torchvision ResNet (``arch``) without its classifier; MoCo's evaluation pipeline:
    bilinear resize to image_size / 0.875, centre crop, ImageNet statistics."""
    import torchvision

    del class_names
    encoder = torchvision.models.get_model(arch, weights=None)
    dim = encoder.fc.in_features
    encoder.fc = nn.Identity()
    if weights:
        encoder.load_state_dict(_load(weights), strict=True)
    preprocess = Preprocess(
        image_size, math.floor(image_size / 0.875), "bilinear", IMAGENET_MEAN, IMAGENET_STD
    )
    identity = {"family": "moco_v2", "arch": arch, "weights": weights or "random"}
    return Backbone(encoder, dim, num_classes, preprocess, identity)
