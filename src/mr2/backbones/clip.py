"""CLIP image encoders through open_clip, with a zero-shot head (``zeroshot.py``).

Weights: a file path, an open_clip tag (``"openai"``, ``"laion2b_s34b_b88k"``; downloaded by
open_clip when the network allows), or ``""`` for random initialisation. ``arch`` is an
open_clip model name (``ViT-B-16``, ``ViT-B-32``, ``RN50``) or ``local-dir:FOLDER`` (a folder
with ``open_clip_config.json`` and optionally weights, open_clip's own local format).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mr2.backbones.base import Backbone, Preprocess
from mr2.backbones.zeroshot import templates, zero_shot_weights

_HEADS: dict[tuple, Tensor] = {}  # zero-shot head of pre-trained weights, per process


def create_clip(
    num_classes: int,
    *,
    arch: str = "ViT-B-16",
    weights: str = "",
    zero_shot: bool = True,
    prompts: str | list[str] = "openai_imagenet",
    normalize: bool = True,
    class_names: list[str] | None = None,
) -> Backbone:
    """A CLIP image encoder with a linear head (zero-shot initialised when ``zero_shot``)."""
    import open_clip

    pretrained = _pretrained(arch, weights, open_clip)
    model = open_clip.create_model(
        arch, pretrained=weights or None, pretrained_text=False, require_pretrained=bool(weights)
    )
    source = weights or (arch.split(":", 1)[0] if pretrained else "random")
    identity = {"family": "clip", "arch": arch, "weights": source}
    net = Backbone(
        model.visual,
        model.visual.output_dim,
        num_classes,
        _preprocess(arch, open_clip.get_model_preprocess_cfg(model)),
        identity,
        normalize=normalize,
    )
    if zero_shot:
        names = class_names or []
        if len(names) != num_classes:
            raise ValueError(
                f"a zero-shot head needs {num_classes} class names, the dataset gives {len(names)}"
            )
        prompt_list = templates(prompts)
        key = (arch, weights, tuple(names), tuple(prompt_list)) if pretrained else None
        w = _zero_shot_head(model, open_clip.get_tokenizer(arch), names, prompt_list, key)
        net.head.weight.data.copy_(w)
        net.head.bias.data.zero_()
        net.prompts = prompt_list  # the head's prompts; not part of the features' identity
    return net


def _pretrained(arch: str, weights: str, open_clip) -> bool:
    """Whether the model gets trained weights (checked: a file or one of open_clip's tags of
    ``arch``; a ``local-dir:`` / ``hf-hub:`` source brings its own)."""
    from_folder = arch.startswith(("local-dir:", "hf-hub:"))
    if weights and from_folder:
        raise ValueError(f"{arch}: weights come from that source itself; leave weights empty")
    if weights:
        known = {tag for name, tag in open_clip.list_pretrained() if name == arch}
        if not Path(weights).is_file() and weights not in known:
            raise FileNotFoundError(
                f"CLIP weights {weights!r}: not a file and not an open_clip tag of {arch} "
                f"(tags: {sorted(known)})"
            )
    if arch.startswith("local-dir:"):
        folder = Path(arch[len("local-dir:") :])
        return any(any(folder.glob(f"*{ext}")) for ext in (".safetensors", ".bin", ".pth"))
    return bool(weights) or arch.startswith("hf-hub:")


def _preprocess(arch: str, cfg: dict) -> Preprocess:
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
    if cfg.get("resize_mode", "shortest") != "shortest":
        raise ValueError(f"{arch}: resize mode {cfg['resize_mode']!r} is not supported")
    return Preprocess(
        size=size,
        resize=size,
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
    )


def _zero_shot_head(model, tokenizer, names: list[str], prompts: list[str], key: tuple | None):
    """The text tower's class embeddings (K, D), cached under ``key`` (None for random
    weights: their text towers differ per seed); on a GPU when there is one: 1000 classes x
    80 prompts are hours on a CPU."""
    w = _HEADS.get(key) if key is not None else None
    if w is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        w = zero_shot_weights(model.to(device), tokenizer, names, prompts).cpu()
        model.cpu()
        if key is not None:
            _HEADS.clear()  # keep one: a 1000-class head of 80 prompts costs 80k encodings
            _HEADS[key] = w
    return w
