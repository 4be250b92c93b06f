"""Methods x seeds: one run per pair under OUT/<method>/seed<k>, resumable (finished runs
are skipped, interrupted ones continue from their checkpoint), then the report."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from mr2 import losses
from mr2.engine import identity, procedures, validate
from mr2.engine.config import RunConfig
from mr2.engine.train import evaluate_initial, train
from mr2.engine.wise import run_wise
from mr2.io import save_json


def methods() -> list[str]:
    """Everything ``compare.methods`` accepts: every loss and every loop-level procedure."""
    return sorted(set(losses.available()) | (set(procedures.PROCEDURES) - {"standard"}))


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
        raise ValueError(
            f"compare.methods: unknown method {method!r}{validate.suggest(method, methods())}; "
            f"available: {', '.join(methods())}"
        )
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


def check_compare(cfg: RunConfig) -> None:
    """Every problem of every run a comparison will train (each method with its options,
    each grid point), raised together before anything is loaded or written."""
    errors: list[str] = []
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
    if cfg.compare.wise_alphas and cfg.model.name not in validate.BACKBONE_NAMES:
        errors.append("compare.wise_alphas needs a pre-trained backbone (model.name)")
    for method in cfg.compare.methods:
        if method not in methods():
            errors.append(
                f"compare.methods: unknown method {method!r}"
                f"{validate.suggest(method, methods())}; available: {', '.join(methods())}"
            )
            continue
        points = [{}]
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


Job = tuple[str, RunConfig, Path]  # (what to print, run configuration, run directory)


def brief(result: dict[str, Any]) -> dict[str, Any]:
    """What a comparison keeps in memory of a finished run: everything but the per-epoch
    history and the confusion matrix (megabytes per run at K = 1000, so a long comparison
    would grow without bound); the whole record stays in the run's result.json."""
    test = {k: v for k, v in result["test"].items() if k != "confusion"}
    rest = {k: v for k, v in result.items() if k not in ("history", "test")}
    return {**rest, "test": test, "epochs": len(result.get("history") or [])}


def run_jobs(jobs: list[Job], *, resume: bool, overwrite: bool, show_progress, log) -> list[dict]:
    """Train every job; results in job order. A job whose directory another process holds
    (``mr2 compare`` twice on one OUT) is put off and awaited at the end, so two processes
    share the work and no run is trained twice."""
    results: dict[int, dict] = {}
    waiting = []
    for i, (what, run, run_dir) in enumerate(jobs):
        found = identity.inspect_run(run_dir, run)
        done = found.finished and found.state is identity.State.MATCH and resume and not overwrite
        log(what + (" (done, skipped)" if done else ""))
        try:
            result = train(
                run, run_dir, resume=resume, overwrite=overwrite, show_progress=show_progress
            )
            results[i] = brief(result)
        except identity.RunBusyError:
            log(f"  {run_dir} is being trained by another process: waiting for it at the end")
            waiting.append(i)
    for i in waiting:
        what, run, run_dir = jobs[i]
        results[i] = brief(train(run, run_dir, resume=True, wait=True, show_progress=show_progress))
    return [results[i] for i in range(len(jobs))]


def tune(
    cfg: RunConfig, method: str, out: Path, *, resume: bool, overwrite: bool, show_progress, log
) -> dict[str, Any]:
    """Train every grid point on the tuning seeds and select on validation (never test).
    Writes OUT/<method>/selection.json and returns it."""
    base = dict(cfg.compare.options.get(method, {}))
    seeds = cfg.compare.tune_seeds or cfg.compare.seeds[:1]
    metric = cfg.compare.select_metric
    points = grid_points(cfg.compare.grid[method])
    jobs = [
        (
            f"  tuning {method} {point_label(point)} seed {seed}",
            run_config(cfg, method, seed, {**base, **point}),
            out / method / "grid" / point_label(point) / f"seed{seed}",
        )
        for point in points
        for seed in seeds
    ]
    results = run_jobs(
        jobs, resume=resume, overwrite=overwrite, show_progress=show_progress, log=log
    )
    rows = []
    for i, point in enumerate(points):
        mine = results[i * len(seeds) : (i + 1) * len(seeds)]
        if any(r.get("val") is None for r in mine):
            raise ValueError("tuning needs a validation split: data.val_fraction > 0")
        scores = [r["val"][metric] for r in mine]
        rows.append(
            {
                "point": point,
                "label": point_label(point),
                "val_scores": scores,
                "val_score": sum(scores) / len(scores),
            }
        )
    best = max(rows, key=lambda r: r["val_score"])  # first of equals wins
    selection = {
        "method": method,
        "metric": f"validation {metric}",
        "tune_seeds": seeds,
        "grid": rows,
        "selected": best["point"],
        "options": {**base, **best["point"]},
    }
    save_json(selection, out / method / "selection.json")
    return selection


def preflight(cfg: RunConfig, out: Path, *, overwrite: bool) -> None:
    """Check, before anything trains, that every run directory known up front (grid points
    and untuned methods) holds nothing of another configuration."""
    if overwrite:
        return
    problems = []
    for method in cfg.compare.methods:
        base = cfg.compare.options.get(method, {})
        if method in cfg.compare.grid:
            seeds = cfg.compare.tune_seeds or cfg.compare.seeds[:1]
            dirs = [
                (out / method / "grid" / point_label(p) / f"seed{s}", {**base, **p}, s)
                for p in grid_points(cfg.compare.grid[method])
                for s in seeds
            ]
        else:
            dirs = [(out / method / f"seed{s}", base, s) for s in cfg.compare.seeds]
        for run_dir, options, seed in dirs:
            found = identity.inspect_run(run_dir, run_config(cfg, method, seed, options))
            if found.state is identity.State.MISMATCH:
                problems.append(found.message)
    if problems:
        raise identity.RunMismatchError(
            "\n".join(problems)
            + "\nTo keep them, write the comparison elsewhere (--out); to replace them, pass "
            "--overwrite (each old run is removed only once its new run is set up)."
        )


def run_compare(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    overwrite: bool = False,
    show_progress: bool | None = None,
    log=print,
) -> list[dict[str, Any]]:
    """Train methods x seeds (after tuning the methods with a grid) under OUT; the whole
    comparison is checked before anything is loaded or written."""
    check_compare(cfg)
    out = Path(out_dir)
    preflight(cfg, out, overwrite=overwrite)
    opts = {"resume": resume, "overwrite": overwrite, "show_progress": show_progress, "log": log}
    chosen = {
        m: tune(cfg, m, out, **opts)["options"]
        for m in cfg.compare.methods
        if m in cfg.compare.grid
    }
    runs = [(m, s) for m in cfg.compare.methods for s in cfg.compare.seeds]
    jobs = [
        (
            f"[{i}/{len(runs)}] {method} seed {seed}",
            run_config(cfg, method, seed, chosen.get(method)),
            out / method / f"seed{seed}",
        )
        for i, (method, seed) in enumerate(runs, 1)
    ]
    results = run_jobs(jobs, **opts)
    if cfg.compare.wise_alphas:
        for _, _, run_dir in jobs:
            if not ((run_dir / "wise.json").exists() and resume and not overwrite):
                run_wise(run_dir, cfg.compare.wise_alphas)
    if cfg.compare.zero_shot:
        for seed in cfg.compare.seeds:
            log(f"zero_shot seed {seed}: evaluated before training")
            run = run_config(cfg, "ce", seed)  # the loss plays no part
            results.append(
                brief(evaluate_initial(run, out / "zero_shot" / f"seed{seed}", overwrite=overwrite))
            )
    return results
