"""Zero-shot classification heads from class-name prompts (CLIP), and the class names and
prompt templates that ship with mr2: the 1000 ImageNet names in CLIP's wording and CLIP's
templates (as published with CLIP; the same lists open_clip carries)."""

from __future__ import annotations

import json
from importlib import resources

import torch
import torch.nn.functional as F
from torch import Tensor


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in CLIP's wording, in the order of sorted WordNet ids."""
    text = resources.files("mr2.backbones").joinpath("imagenet_classes.txt").read_text()
    return text.splitlines()


def templates(name: str | list[str]) -> list[str]:
    """Prompt templates with ``{}`` for the class name: ``"openai_imagenet"`` (CLIP's 80),
    ``"simple"`` (CLIP's 7), ``"single"`` ("a photo of a {}."), CLIP's per-dataset prompts
    ``"pets"``, ``"flowers102"``, ``"food101"``, ``"aircraft"``, ``"cars"``, or a list."""
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
