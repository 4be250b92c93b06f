"""Everything a comparison checks before it loads or writes anything: every run's
configuration, the executor and its settings, settings that would apply to no run, and
run directories that hold another configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mr2 import backbones
from mr2.engine import executors, identity, validate
from mr2.engine.compare.plan import (
    grid_points,
    methods,
    point_label,
    run_config,
    run_dir,
    tune_seeds,
    unknown_method,
)
from mr2.engine.config import RunConfig


def executor_problems(cfg: RunConfig) -> list[str]:
    """The executor's name, package (extra ``cluster``) and its options
    (``compare.executor_options``, checked by the executor: ``executors.problems``)."""
    return executors.problems(cfg.compare.executor, cfg.compare.executor_options)


def _setting_problems(cfg: RunConfig) -> list[str]:
    """Comparison-wide settings that would apply to no run, or apply ambiguously."""
    c, errors = cfg.compare, []
    if cfg.train.procedure != "standard" or cfg.train.procedure_options:
        errors.append(
            "train.procedure / train.procedure_options apply to no run of a comparison (each "
            "method sets its own): compare the procedure as a method, e.g. compare.methods = "
            '["ce", "jtt"], with its options in [compare.options.jtt]'
        )
    if c.tune_seeds and not c.grid:
        errors.append("compare.tune_seeds is set but no method has a grid (compare.grid)")
    if len(set(c.tune_seeds)) != len(c.tune_seeds):
        errors.append(f"compare.tune_seeds has duplicates: {c.tune_seeds}")
    return errors


def check_compare(cfg: RunConfig) -> None:
    """Every problem of every run a comparison will train (each method with its options,
    each grid point), raised together before anything is loaded or written."""
    errors: list[str] = executor_problems(cfg) + _setting_problems(cfg)
    for section in ("options", "grid"):
        unknown = sorted(set(getattr(cfg.compare, section)) - set(cfg.compare.methods))
        if unknown:
            errors.append(f"compare.{section} has entries for methods not compared: {unknown}")
    if (cfg.loss.options or cfg.loss.preset) and cfg.loss.name not in cfg.compare.methods:
        errors.append(
            f"[loss] options / preset are set for loss.name = {cfg.loss.name!r}, which is not "
            f"among compare.methods {cfg.compare.methods}: they would apply to no run. Move "
            "them to [compare.options.<method>], or set loss.name to the method they are for"
        )
    if cfg.compare.reference not in cfg.compare.methods:
        errors.append(
            f"compare.reference = {cfg.compare.reference!r} is not among compare.methods "
            f"{cfg.compare.methods}: set compare.reference to the method that ranks the classes"
        )
    if cfg.compare.wise_alphas and cfg.model.name not in backbones.BACKBONES:
        errors.append("compare.wise_alphas needs a pre-trained backbone (model.name)")
    for method in cfg.compare.methods:
        if method not in methods():
            errors.append(unknown_method(method))
            continue
        points: list[dict[str, Any]] = [{}]
        if method in cfg.compare.grid:
            try:
                points = grid_points(cfg.compare.grid[method])
            except ValueError as err:
                errors.append(str(err))
        labels = [point_label(p) for p in points]
        if len(set(labels)) != len(labels):
            errors.append(f"compare.grid.{method}: two grid points share a folder name {labels}")
        base = cfg.compare.options.get(method, {})
        for point in points:
            where = f"method {method!r}" + (f" at grid point {point_label(point)}" if point else "")
            run = run_config(
                cfg, method, cfg.compare.seeds[0] if cfg.compare.seeds else 0, {**base, **point}
            )
            errors += [f"{where}: {e}" for e in validate.problems(run)]
    validate.raise_for(errors, "comparison")


def preflight(cfg: RunConfig, out: Path, *, overwrite: bool) -> None:
    """Check, before anything trains, that every run directory known up front (grid points
    and untuned methods) holds nothing of another configuration."""
    problems: list[identity.Inspection] = []
    for method in cfg.compare.methods:
        base = cfg.compare.options.get(method, {})
        if method in cfg.compare.grid:
            dirs = [
                (run_dir(out, method, s, p), {**base, **p}, s)
                for p in grid_points(cfg.compare.grid[method])
                for s in tune_seeds(cfg)
            ]
        else:
            dirs = [(run_dir(out, method, s), base, s) for s in cfg.compare.seeds]
        for folder, options, seed in dirs:
            found = identity.inspect_run(folder, run_config(cfg, method, seed, options))
            if found.state is identity.State.MISMATCH and (found.foreign or not overwrite):
                problems.append(found)
    foreign = [f.message for f in problems if f.foreign]
    if foreign:  # never removed by mr2: no --overwrite suggested
        raise identity.RunMismatchError("\n".join(foreign))
    if problems:
        raise identity.RunMismatchError(
            "\n".join(f.message for f in problems)
            + "\nTo keep them, write the comparison elsewhere (--out); to replace them, pass "
            "--overwrite (each old run is removed only once its new run is set up)."
        )
