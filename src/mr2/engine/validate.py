"""Checking a whole configuration before any data is loaded or any directory written.

``check_run`` covers one run: every registry name (dataset, model or backbone, loss,
procedure), every option against the factory that will receive it (names, value types
against the factory's defaults, then ranges by building the loss once on a dummy class
count), and the ranges of the optimiser, schedule and training settings. ``check_compare``
runs it over every run a comparison will train: each method with its options and each
grid point. All problems are reported together.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mr2 import backbones, losses, models
from mr2 import data as mr2_data
from mr2._registry import suggest
from mr2.engine import loggers, procedures, schedule
from mr2.engine.config import RunConfig
from mr2.engine.config_rules import range_problems
from mr2.losses import registry as loss_registry
from mr2.models import external

BACKBONE_NAMES = tuple(backbones.available())  # their packages are imported when one is built

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


def _model(cfg: RunConfig) -> list[str]:
    m = cfg.model
    names = sorted([*models.available(), *BACKBONE_NAMES])
    if external.split(m.name):
        probe = ["model.probe needs a pre-trained backbone"] if m.probe else []
        return probe + external.problems(m.name, m.options)
    if m.name not in names:
        return [
            f"model.name: unknown model {m.name!r}{suggest(m.name, names)}; available: "
            f"{', '.join(names)}, or a library's: 'timm:<name>', 'torchvision:<name>'"
        ]
    if m.name in BACKBONE_NAMES:
        missing = backbones.missing_package(m.name)
        if missing:
            return [
                f"model.name = {m.name!r} needs {missing}, of the 'vision' extra: "
                "pip install 'mr2[vision]'"
            ]
        accepted = backbones.options(m.name)
    else:
        if m.probe:
            return [
                f"model.probe needs a pre-trained backbone ({', '.join(BACKBONE_NAMES)}), "
                f"not {m.name!r}"
            ]
        accepted = models.options(m.name) or set()
    return models.problems(m.options) + [
        f"model.options.{key}: model {m.name!r} does not take it{suggest(key, sorted(accepted))}; "
        f"accepted: {sorted(accepted)}"
        for key in m.options
        if key not in accepted
    ]


def _typed(where: str, value: Any, default: Any) -> str | None:
    """A message if ``value`` does not have the type of the factory's ``default``."""
    if default is None or isinstance(default, (list, dict, tuple)):
        return None
    want = type(default)
    if want is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, want)
    return None if ok else f"{where}: expected {want.__name__}, got {value!r}"


def _options(
    where: str,
    owner: str,
    options: dict[str, Any],
    defaults: dict[str, Any],
    text_ok=lambda key: False,
) -> list[str]:
    """Unknown option names (with a suggestion) and values of the wrong type (against the
    factory's defaults; ``text_ok(key)``: the option is annotated to take a string too)."""
    errors = []
    for key, value in options.items():
        if key not in defaults:
            errors.append(
                f"{where}.{key}: {owner} does not take it{suggest(key, sorted(defaults))}; "
                f"accepted: {sorted(defaults)}"
            )
        elif isinstance(value, str) and text_ok(key):
            continue  # e.g. rep_temperature = "auto": the factory checks the value
        elif (msg := _typed(f"{where}.{key}", value, defaults[key])) is not None:
            errors.append(msg)
    return errors


def _loss(cfg: RunConfig, where: str = "loss") -> list[str]:
    name, options = cfg.loss.name, cfg.loss.options
    if unknown := loss_registry.LOSSES.problems(name, f"{where}.name"):
        return unknown
    errors = _options(
        f"{where}.options",
        f"loss {name!r}",
        options,
        losses.options(name),
        text_ok=lambda key: loss_registry.accepts_text(name, key),
    )
    if "process_group" in options:
        errors.append(
            f"{where}.options.process_group: a torch.distributed group is passed in code "
            "(MR2Loss(..., process_group=group)), not set in a config; under torchrun the "
            "engine uses the default group"
        )
    if cfg.loss.preset and cfg.loss.preset not in losses.presets(name):
        errors.append(
            f"{where}.preset: loss {name!r} has no preset {cfg.loss.preset!r}; available: "
            f"{losses.presets(name) or 'none'}"
        )
    if errors:
        return errors
    try:  # ranges and combinations: build it once (K and D are dummies here)
        losses.create(
            name,
            num_classes=_dummy_classes(options),
            preset=cfg.loss.preset,
            feature_dim=8,
            **options,
        )
    except (TypeError, ValueError) as err:
        errors.append(f"{where} {name!r} with options {options}: {err}")
    return errors


def _dummy_classes(options: dict[str, Any]) -> int:
    lengths = [len(v) for v in options.values() if isinstance(v, list)]
    return lengths[0] if lengths else 10


def _procedure(cfg: RunConfig) -> list[str]:
    name, options = cfg.train.procedure, cfg.train.procedure_options
    if unknown := procedures.PROCEDURES.problems(name, "train.procedure"):
        return unknown
    defaults = procedures.defaults(name)
    return _options("train.procedure_options", f"procedure {name!r}", options, defaults)


def problems(cfg: RunConfig) -> list[str]:
    """Every problem of one run's configuration (empty when it can run)."""
    return [
        *range_problems(cfg),
        *schedule.problems(cfg.optim),
        *loggers.problems(cfg.train.loggers),
        *_data(cfg),
        *_model(cfg),
        *_loss(cfg),
        *_procedure(cfg),
    ]


def raise_for(errors: list[str], what: str = "configuration") -> None:
    if errors:
        unique = list(dict.fromkeys(errors))
        raise ValueError(f"bad {what} ({len(unique)} problem(s)):\n  " + "\n  ".join(unique))


def check_run(cfg: RunConfig) -> None:
    """Raise ``ValueError`` listing every problem of one run's configuration."""
    raise_for(problems(cfg))
