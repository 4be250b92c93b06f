"""``mr2 extract``: a backbone's features of every split into the feature cache."""

from __future__ import annotations

from typing import Any

import torch

from mr2 import data as mr2_data
from mr2.engine import validate
from mr2.engine.config import RunConfig
from mr2.engine.context import setup
from mr2.engine.features import extract_features
from mr2.engine.run import create_backbone, is_backbone, load_data


def extract(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """``mr2 extract``: the configured backbone's features of every split into the cache
    (reused where present); cache info per split."""
    validate.check_run(cfg)
    if not is_backbone(cfg):
        raise ValueError(f"mr2 extract needs a pre-trained backbone, not {cfg.model.name!r}")
    ctx = setup(cfg)
    dataset = load_data(cfg)
    torch.manual_seed(cfg.train.seed)
    model = create_backbone(cfg, dataset)
    return extract_features(cfg, mr2_data.preprocessed(dataset, model.preprocess), model, ctx)[1]
