"""What a comparison runs: its methods, each (method, seed) run's configuration, grid
points and their folder names, and the runs it reports."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from mr2 import losses
from mr2._registry import suggest
from mr2.comparison import PlannedRun
from mr2.engine import procedures
from mr2.engine.config import RunConfig


def methods() -> list[str]:
    """Everything ``compare.methods`` accepts: every loss and every loop-level procedure."""
    return sorted(set(losses.available()) | (set(procedures.PROCEDURES) - {"standard"}))


def unknown_method(method: str) -> str:
    """The one message for a method ``compare.methods`` does not know."""
    return (
        f"compare.methods: unknown method {method!r}{suggest(method, methods())}; "
        f"available: {', '.join(methods())}"
    )


def run_config(
    cfg: RunConfig, method: str, seed: int, options: dict[str, Any] | None = None
) -> RunConfig:
    """The configuration of one (method, seed) run of a comparison.

    How ``[loss]`` and ``compare.options`` combine: the ``[loss]`` table's ``options`` and
    ``preset`` are the base settings of the method named by ``loss.name``;
    ``compare.options.<method>`` (or ``options``, e.g. a grid point) override them key by
    key (a ``preset`` key there sets the run's ``loss.preset``). Other loss methods start
    from their defaults. A loop-level method (JTT, LfF, DRW) takes procedure options, plus
    optional ``loss`` and ``loss_options`` (JTT and LfF train with cross-entropy, DRW with
    LDAM by default)."""
    if method not in methods():
        raise ValueError(unknown_method(method))
    opts = dict(cfg.compare.options.get(method, {}) if options is None else options)
    run = copy.deepcopy(cfg)
    if method in procedures.PROCEDURES:
        run.train.procedure = method
        run.loss.name = opts.pop("loss", procedures.DEFAULT_LOSS[method])
        run.loss.options = opts.pop("loss_options", {})
        run.loss.preset = opts.pop("loss_preset", "")
        run.train.procedure_options = opts
    else:
        same = method == cfg.loss.name
        base = dict(cfg.loss.options) if same else {}
        run.loss.preset = opts.pop("preset", cfg.loss.preset if same else "")
        run.loss.name, run.loss.options = method, {**base, **opts}
        run.train.procedure, run.train.procedure_options = "standard", {}
    run.train.seed = seed
    return run


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of option values, in the order given."""
    points: list[dict[str, Any]] = [{}]
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"compare.grid: {key} needs a non-empty list of values")
        points = [{**p, key: v} for p in points for v in values]
    return points


def point_label(point: dict[str, Any]) -> str:
    """A grid point's folder name: ``key=value`` pairs, every character outside letters,
    digits and ``._=,+-`` replaced by ``_`` (a value like ``../x`` stays inside OUT)."""
    text = ",".join(f"{k}={v}" for k, v in point.items()) or "default"
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text).replace("..", "__")
    return safe if safe.strip(".") else "_"


def tune_seeds(cfg: RunConfig) -> list[int]:
    """The seeds a grid is tuned on: ``compare.tune_seeds``, else the first seed."""
    return list(cfg.compare.tune_seeds or cfg.compare.seeds[:1])


def run_dir(out: Path, method: str, seed: int, point: dict[str, Any] | None = None) -> Path:
    """Where a comparison's run lives: OUT/<method>/seed<k>, or a tuning run of grid
    ``point``: OUT/<method>/grid/<point>/seed<k>."""
    base = out / method if point is None else out / method / "grid" / point_label(point)
    return base / f"seed{seed}"


def planned_runs(cfg: RunConfig) -> list[PlannedRun]:
    """The runs a comparison reports (``mr2.comparison``): methods x seeds, and the
    zero-shot evaluations when asked."""
    c = cfg.compare
    methods = [*c.methods, *(["zero_shot"] if c.zero_shot else [])]
    return [PlannedRun(m, s, f"{m}/seed{s}") for m in methods for s in c.seeds]
