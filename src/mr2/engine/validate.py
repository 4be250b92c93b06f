"""Checking a whole configuration before any data is loaded or any directory written.

``check_run`` covers one run: every name a registry holds (dataset, model or backbone,
loss, procedure, optimiser, schedule, loggers) and every option against the entry that
will receive it (``Registry.option_problems``: names, value types against the entry's
defaults, then the entry's own check of ranges), and the ranges of the training
settings. ``check_compare`` runs it over every run a comparison will train: each method
with its options and each grid point. All problems are reported together.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mr2 import backbones, losses, models
from mr2 import data as mr2_data
from mr2._registry import suggest
from mr2.engine import loggers, procedures, schedule
from mr2.engine.config import RunConfig
from mr2.engine.config_rules import range_problems

ENGINE_DATA_KEYS = ("data_dir", "path", "val_fraction", "seed", "train_subset", "allow_download")


def _data(cfg: RunConfig) -> list[str]:
    d = cfg.data
    if unknown := mr2_data.LOADERS.problems(d.name, "data.name"):
        return unknown
    accepted = mr2_data.options(d.name)
    errors = [
        f"data.{key} is set but dataset {d.name!r} does not use it"
        for key in ("data_dir", "path")
        if getattr(d, key) and key not in accepted
    ]
    if d.path and "path" in accepted and not Path(d.path).exists():
        errors.append(f"data.path {d.path} does not exist: set data.path to the dataset's file")
    elif not errors:
        errors += mr2_data.problems(d.name, path=d.path, **d.options)
    if d.autoaugment and importlib.util.find_spec("torchvision") is None:
        errors.append("data.autoaugment needs torchvision: pip install 'mr2[vision]'")
    for key in d.options:
        if key in ENGINE_DATA_KEYS:
            errors.append(f"data.options.{key}: set it as data.{key}, not as a loader option")
        elif key not in accepted:
            extra = sorted(accepted - set(ENGINE_DATA_KEYS))
            errors.append(
                f"data.options.{key}: dataset {d.name!r} does not take it"
                f"{suggest(key, extra)}; accepted: {extra}"
            )
    return errors


VISION = "pip install 'mr2[vision]'"


def _model(cfg: RunConfig) -> list[str]:
    """model.name is one of mr2's models, a library's ("timm:<name>") or a pre-trained
    backbone (the only kind model.probe takes)."""
    m = cfg.model
    registry = backbones.BACKBONES if m.name in backbones.BACKBONES else models.MODELS
    if m.name not in registry:
        return [models.MODELS.unknown(m.name, "model.name", also=backbones.available())]
    if found := registry.problems(m.name, "model.name", VISION):
        return found
    if m.probe and registry is not backbones.BACKBONES:
        return [
            f"model.probe needs a pre-trained backbone ({', '.join(backbones.available())}), "
            f"not {m.name!r}"
        ]
    return registry.option_problems(m.name, m.options, "model.options")


def _procedure(cfg: RunConfig) -> list[str]:
    name = cfg.train.procedure
    if unknown := procedures.PROCEDURES.problems(name, "train.procedure"):
        return unknown
    return procedures.PROCEDURES.option_problems(
        name, cfg.train.procedure_options, "train.procedure_options"
    )


def problems(cfg: RunConfig) -> list[str]:
    """Every problem of one run's configuration (empty when it can run)."""
    return [
        *range_problems(cfg),
        *schedule.problems(cfg.optim),
        *loggers.problems(cfg.train.loggers),
        *_data(cfg),
        *_model(cfg),
        *losses.problems(cfg.loss.name, cfg.loss.options, cfg.loss.preset),
        *_procedure(cfg),
    ]


def raise_for(errors: list[str], what: str = "configuration") -> None:
    if errors:
        unique = list(dict.fromkeys(errors))
        raise ValueError(f"bad {what} ({len(unique)} problem(s)):\n  " + "\n  ".join(unique))


def check_run(cfg: RunConfig) -> None:
    """Raise ``ValueError`` listing every problem of one run's configuration."""
    raise_for(problems(cfg))
