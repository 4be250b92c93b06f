"""One list of losses for the CLI, configs and tests: ``create(name, num_classes=K, ...)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from mr2._registry import Entry, Option, Registry, signature_options
from mr2.losses.base import internals_of


def _target(entry: Entry) -> Callable[..., Any]:
    """The class (or factory) whose signature gives the loss's options."""
    return entry.extra["options_from"] or entry.factory


def _loss_options(entry: Entry) -> dict[str, Option]:
    """A loss's keyword options (num_classes excluded), following the ``**kwargs`` a class
    passes on to its base class (reduction, validate); the options an ablation fixes are
    left out. Read once per loss (``Registry.spec``)."""
    target = _target(entry)
    chain = (
        [vars(c)["__init__"] for c in target.__mro__ if "__init__" in vars(c)]
        if isinstance(target, type)
        else [target]
    )
    found: dict[str, Option] = {}
    for fn in chain:
        for key, option in signature_options(fn, {"self", "num_classes"}).items():
            found.setdefault(key, option)
        params = inspect.signature(fn).parameters.values()
        if not any(p.kind == p.VAR_KEYWORD for p in params) or fn is nn.Module.__init__:
            break
    return {k: v for k, v in found.items() if k not in entry.extra["fixed"]}


LOSSES = Registry("loss", options_of=_loss_options)


def register(
    name: str,
    description: str,
    options_from: Callable | None = None,
    fixed: dict[str, Any] | None = None,
) -> Callable:
    """Decorator: register a loss class (or factory) under ``name``. A factory that passes
    ``**kwargs`` on to a class names that class in ``options_from``; ``fixed`` options are
    set by the factory (an ablation's defining setting) and not accepted from the caller.
    A class with an ``option_problems(options) -> list[str]`` (MR2Loss) has its option
    ranges checked by it; other losses are built once on dummy sizes to find them."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ranges = getattr(options_from or factory, "option_problems", None)
        pinned = dict(fixed or {})

        def check(_name: str, options: Mapping[str, Any]) -> list[str]:
            if ranges is not None:
                return list(ranges({**options, **pinned}))
            return _built(name, options)

        return LOSSES.register(
            name, factory, description, check=check, options_from=options_from, fixed=pinned
        )

    return wrap


def _built(name: str, options: Mapping[str, Any]) -> list[str]:
    """The error building loss ``name`` with ``options`` raises (the class count: the
    length of a per-class list option, else 10), or []."""
    lengths = [len(v) for v in options.values() if isinstance(v, list)]
    k = lengths[0] if lengths else 10
    try:
        internals_of(create(name, num_classes=k, feature_dim=8, **options), k)
    except (TypeError, ValueError) as err:
        return [str(err)]
    return []


def problems(
    name: str, options: Mapping[str, Any], preset: str = "", where: str = "loss"
) -> list[str]:
    """Everything wrong with loss ``name`` with ``options`` (and ``preset``) as a config
    gives them, without raising: the name, option names and types, then the ranges."""
    if unknown := LOSSES.problems(name, f"{where}.name"):
        return unknown
    errors = []
    if "process_group" in options:
        errors.append(
            f"{where}.options.process_group: a torch.distributed group is passed in code "
            "(MR2Loss(..., process_group=group)), not set in a config; under torchrun the "
            "engine uses the default group"
        )
    base: dict[str, Any] = {}
    if preset and preset not in presets(name):
        errors.append(
            f"{where}.preset: loss {name!r} has no preset {preset!r}; available: "
            f"{presets(name) or 'none'}"
        )
    elif preset:  # resolved on dummy sizes: only the ranges of its values matter here
        resolved = _target(LOSSES.entry(name)).preset_options(preset, 10, 8)  # type: ignore[attr-defined]
        base = {k: v for k, v in resolved.items() if k in LOSSES.spec(name)}  # not the fixed
    given = {k: v for k, v in options.items() if k != "process_group"}
    return errors + LOSSES.option_problems(name, {**base, **given}, f"{where}.options")


def available() -> list[str]:
    """Names of all registered losses, sorted."""
    return LOSSES.available()


def collapse_advice(name: str) -> str:
    """What to change when a run of loss ``name`` ended near chance: for a loss with a
    representation term (``lambda_rep``: MR² and its variants) that term's weight; for any
    other loss, the optimisation (no MR² setting applies to it)."""
    if name in LOSSES.available() and "lambda_rep" in LOSSES.options(name):
        return (
            "with MR²'s scale-free representation term keep lambda_rep at 0.01-0.03 (0.3 "
            "collapsed our studies)"
        )
    return "check the learning rate, the schedule and the data"


def describe(name: str) -> str:
    return LOSSES.entry(name).description


def presets(name: str) -> list[str]:
    """Named settings of loss ``name`` (``create(..., preset=...)``), e.g. MR²'s "official"."""
    entry = LOSSES.entry(name)
    return list(getattr(_target(entry), "PRESETS", ()))


def options(name: str) -> dict[str, Any]:
    """The keyword options of a loss and their defaults (num_classes excluded), including
    those a class passes on to its base class through ``**kwargs`` (reduction, validate)."""
    return {key: option.default for key, option in LOSSES.spec(name).items()}


def create(
    name: str,
    *,
    num_classes: int,
    preset: str = "",
    feature_dim: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build loss ``name`` for ``num_classes`` classes; unknown names and options raise
    ``ValueError`` listing what is accepted. ``preset`` names settings resolved with the
    class count and the feature width ``feature_dim`` (see ``presets``); ``kwargs``
    override them."""
    entry = LOSSES.entry(name)
    LOSSES.check_options(name, kwargs)
    base: dict[str, Any] = {}
    if preset:
        if preset not in presets(name):
            raise ValueError(
                f"loss {name!r} has no preset {preset!r}; available: {presets(name) or 'none'}"
            )
        base = _target(entry).preset_options(preset, num_classes, feature_dim)  # type: ignore[attr-defined]
    return entry.factory(num_classes, **{**base, **kwargs, **entry.extra["fixed"]})
