"""CLIP image encoders through open_clip, with a zero-shot head built from class-name prompts.

Weights: a file path, an open_clip tag (``"openai"``, ``"laion2b_s34b_b88k"``; downloaded by
open_clip when the network allows), or ``""`` for random initialisation. ``arch`` is an
open_clip model name (``ViT-B-16``, ``ViT-B-32``, ``RN50``) or ``local-dir:FOLDER`` (a folder
with ``open_clip_config.json`` and optionally weights, open_clip's own local format).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mr2.backbones.base import Backbone, Preprocess


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in CLIP's wording, in the order of sorted WordNet ids."""
    text = resources.files("mr2.backbones").joinpath("imagenet_classes.txt").read_text()
    return text.splitlines()


def templates(name: str | list[str]) -> list[str]:
    """Prompt templates with ``{}`` for the class name: ``"openai_imagenet"`` (CLIP's 80),
    ``"simple"`` (CLIP's 7), ``"single"`` ("a photo of a {}."), or a list of your own."""
    if isinstance(name, list):
        chosen = name
    else:
        table = json.loads(resources.files("mr2.backbones").joinpath("templates.json").read_text())
        if name not in table:
            raise ValueError(f"unknown templates {name!r}; known: {sorted(table)} or a list")
        chosen = table[name]
    if not chosen or any("{}" not in t for t in chosen):
        raise ValueError("every template needs a '{}' for the class name")
    return chosen


@torch.no_grad()
def zero_shot_weights(model, tokenizer, class_names: list[str], prompts: list[str]) -> Tensor:
    """(K, D) head weights: per class, the mean of the L2-normalised text embeddings of its
    prompts, normalised again and scaled by CLIP's logit scale, so that
    ``normalize(f) @ W.T`` are CLIP's zero-shot logits."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for name in class_names:
        tokens = tokenizer([p.format(name) for p in prompts]).to(device)
        emb = F.normalize(model.encode_text(tokens), dim=-1)
        rows.append(F.normalize(emb.mean(0), dim=0))
    model.train(was_training)
    return torch.stack(rows) * model.logit_scale.exp()


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

    from_folder = arch.startswith(("local-dir:", "hf-hub:"))
    if weights and from_folder:
        raise ValueError(f"{arch}: weights come from that source itself; leave weights empty")
    pretrained = bool(weights) or arch.startswith("hf-hub:")
    if arch.startswith("local-dir:"):
        folder = Path(arch[len("local-dir:") :])
        pretrained = any(any(folder.glob(f"*{ext}")) for ext in (".safetensors", ".bin", ".pth"))
    if weights and not from_folder:
        known = {tag for name, tag in open_clip.list_pretrained() if name == arch}
        if not Path(weights).is_file() and weights not in known:
            raise FileNotFoundError(
                f"CLIP weights {weights!r}: not a file and not an open_clip tag of {arch} "
                f"(tags: {sorted(known)})"
            )
    model = open_clip.create_model(
        arch, pretrained=weights or None, pretrained_text=False, require_pretrained=bool(weights)
    )
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
    if cfg.get("resize_mode", "shortest") != "shortest":
        raise ValueError(f"{arch}: resize mode {cfg['resize_mode']!r} is not supported")
    preprocess = Preprocess(
        size=size,
        resize=size,
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
    )
    source = weights or (arch.split(":", 1)[0] if pretrained else "random")
    identity = {"family": "clip", "arch": arch, "weights": source}
    net = Backbone(
        model.visual,
        model.visual.output_dim,
        num_classes,
        preprocess,
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
        key = (arch, weights, tuple(names), tuple(prompt_list))
        w = _HEADS.get(key) if pretrained else None  # random text towers differ per seed
        if w is None:
            # on a GPU when there is one: 1000 classes x 80 prompts are hours on a CPU
            device = "cuda" if torch.cuda.is_available() else "cpu"
            w = zero_shot_weights(
                model.to(device), open_clip.get_tokenizer(arch), names, prompt_list
            ).cpu()
            model.cpu()
            if pretrained:
                _HEADS.clear()  # keep one: a 1000-class head of 80 prompts costs 80k encodings
                _HEADS[key] = w
        net.head.weight.data.copy_(w)
        net.head.bias.data.zero_()
        net.prompts = prompt_list  # the head's prompts; not part of the features' identity
    return net
