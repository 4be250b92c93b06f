"""Zero-shot classification heads from class-name prompts (CLIP). The 1000 ImageNet class
names in CLIP's wording and CLIP's ImageNet templates come from open_clip's
``zero_shot_metadata``; CLIP's per-dataset prompts (not in open_clip) ship with mr2."""

from __future__ import annotations

import json
from importlib import resources
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor


def _open_clip_metadata() -> ModuleType:
    try:
        from open_clip import zero_shot_metadata
    except ImportError as err:
        raise ImportError(
            "CLIP's ImageNet class names and templates come from open_clip: "
            "pip install 'mr2[vision]'"
        ) from err
    return zero_shot_metadata


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in CLIP's wording, in the order of sorted WordNet ids."""
    return list(_open_clip_metadata().IMAGENET_CLASSNAMES)


def _template_table() -> dict[str, list[str]]:
    table = json.loads(resources.files("mr2.backbones").joinpath("templates.json").read_text())
    meta = _open_clip_metadata()
    table["openai_imagenet"] = [t("{}") for t in meta.OPENAI_IMAGENET_TEMPLATES]
    table["simple"] = [t("{}") for t in meta.SIMPLE_IMAGENET_TEMPLATES]
    return table


def templates(name: str | list[str]) -> list[str]:
    """Prompt templates with ``{}`` for the class name: ``"openai_imagenet"`` (CLIP's 80),
    ``"simple"`` (CLIP's 7), ``"single"`` ("a photo of a {}."), CLIP's per-dataset prompts
    ``"pets"``, ``"flowers102"``, ``"food101"``, ``"aircraft"``, ``"cars"``, or a list."""
    if isinstance(name, list):
        chosen = name
    else:
        table = _template_table()
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
