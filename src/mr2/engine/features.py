"""Data for a pre-trained backbone: its preprocessing (fine-tuning), or its cached frozen
features and a linear probe (``model.probe``)."""

from __future__ import annotations

from typing import Any, cast

from torch import nn

from mr2 import data as mr2_data
from mr2 import models
from mr2.backbones.base import Backbone
from mr2.backbones.cache import cached_features
from mr2.engine.config import RunConfig
from mr2.engine.context import Context


def fit_to_backbone(
    cfg: RunConfig, dataset: mr2_data.Dataset, model: nn.Module, ctx: Context
) -> tuple[mr2_data.Dataset, nn.Module]:
    """Fit the data to a pre-trained backbone: its preprocessing for fine-tuning, or, with
    ``model.probe``, its cached features and a linear probe whose head starts as the
    backbone's (CLIP: the zero-shot head). Other models pass through."""
    if not isinstance(model, Backbone) or dataset.features_of is not None:
        return dataset, model
    dataset = mr2_data.preprocessed(dataset, model.preprocess)
    if not cfg.model.probe:
        return dataset, model
    description = model.describe()  # checksums the weights: once
    splits, infos = extract_features(cfg, dataset, model, ctx, description)
    notes = [f"{name} features: cache entry {info['key']}" for name, info in infos.items()]
    probe_data = mr2_data.Dataset(
        dataset.name,
        splits["train"],
        splits["val"],
        splits["test"],
        dataset.num_classes,
        dataset.class_names,
        dataset.notes + notes,
        features_of=description,
    )
    probe = models.create("linear", probe_data.input_shape, probe_data.num_classes)
    cast(nn.Linear, probe.head).load_state_dict(model.head.state_dict())
    return probe_data, probe


def extract_features(
    cfg: RunConfig,
    dataset: mr2_data.Dataset,
    model: Backbone,
    ctx: Context,
    description: dict[str, Any] | None = None,
) -> tuple[dict[str, mr2_data.Split], dict[str, dict[str, Any]]]:
    """The backbone's features of every split (dataset already preprocessed), from the cache
    or extracted into it (under the run's AMP setting); (feature splits, cache info)."""
    model = model.to(ctx.device)
    description = description or model.describe()
    splits, infos = {}, {}
    for name in ("train", "val", "test"):  # under DDP every process extracts its share
        split = getattr(dataset, name)
        feats, info = cached_features(
            model,
            split,
            name,
            cache_dir=cfg.model.cache_dir,
            batch_size=cfg.train.eval_batch_size,
            device=ctx.device,
            amp_dtype=ctx.amp_dtype,
            description=description,
        )
        splits[name], infos[name] = mr2_data.Split(feats, split.y), info
    return splits, infos
