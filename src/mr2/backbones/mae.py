"""MAE ViT encoders through timm (``vit_base_patch16_224.mae`` and the other ``.mae`` tags).

Weights: a local file (timm loads it with the model's own checkpoint filter, so the official
MAE ``{"model": ...}`` checkpoints work), ``"hub"`` for timm's own download, or ``""`` for
random initialisation. ``model_kwargs`` override the architecture (tests build tiny ViTs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    overlay = {"file": weights} if weights and weights != "hub" else None
    encoder = timm.create_model(
        arch,
        pretrained=bool(weights),
        pretrained_cfg_overlay=overlay,
        num_classes=0,
        global_pool=global_pool,
        **(model_kwargs or {}),
    )
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
