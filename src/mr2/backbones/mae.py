"""MAE ViT encoders through timm (``vit_base_patch16_224.mae`` and the other ``.mae`` tags).

Weights: a local file (timm loads it with the model's own checkpoint filter, so the official
MAE ``{"model": ...}`` checkpoints work), ``"hub"`` for timm's own download, or ``""`` for
random initialisation. ``model_kwargs`` override the architecture (tests build tiny ViTs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mr2.backbones.base import Backbone, Preprocess


def create_mae(
    num_classes: int,
    *,
    arch: str = "vit_base_patch16_224.mae",
    weights: str = "",
    global_pool: str = "token",
    model_kwargs: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
) -> Backbone:
    """``global_pool``: "token" (the class token, MAE's linear-probe protocol) or "avg"."""
    import timm

    del class_names  # no zero-shot head for MAE
    if weights and weights != "hub" and not Path(weights).is_file():
        raise FileNotFoundError(f"MAE weights {weights!r}: no such file (or use 'hub')")
    if global_pool not in ("token", "avg"):
        raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
    overlay = {"file": weights} if weights and weights != "hub" else None
    # average pooling (MAE's fine-tuning protocol) reads a fresh LayerNorm, fc_norm, in place
    # of the pre-trained final norm, as MAE's own code does: that load cannot be strict
    avg = global_pool == "avg"
    encoder: Any = timm.create_model(
        arch,
        pretrained=bool(weights),
        pretrained_cfg_overlay=overlay,
        pretrained_strict=not avg,
        num_classes=0,
        global_pool=global_pool,
        **(model_kwargs or {}),
    )
    if avg and overlay:
        _check_loaded(encoder, weights)
    cfg = timm.data.resolve_model_data_config(encoder)
    size = int(encoder.patch_embed.img_size[0])
    preprocess = Preprocess.from_crop_pct(
        size,
        cfg.get("crop_pct", 0.875),
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
    )
    identity = {"family": "mae", "arch": arch, "weights": weights or "random"}
    return Backbone(encoder, encoder.num_features, num_classes, preprocess, identity)


def _check_loaded(encoder, path: str) -> None:
    """After a non-strict load: every weight but fc_norm must have come from the file."""
    from timm.models import load_state_dict
    from timm.models.vision_transformer import checkpoint_filter_fn

    stored = checkpoint_filter_fn(load_state_dict(path), encoder)
    for name, value in encoder.state_dict().items():
        if name.startswith("fc_norm."):
            continue
        if name not in stored or not torch.equal(stored[name].to(value.dtype), value):
            raise ValueError(f"MAE weights {path}: {name} is missing or was not loaded")
