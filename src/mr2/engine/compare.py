"""Methods x seeds: one run per pair under OUT/<method>/seed<k>, resumable (finished runs
are skipped, interrupted ones continue from their checkpoint), then the report."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mr2 import losses
from mr2.engine import procedures
from mr2.engine.checkpoint import save_json
from mr2.engine.config import RunConfig
from mr2.engine.loop import is_backbone
from mr2.engine.train import evaluate_initial, train
from mr2.engine.wise import run_wise


def methods() -> list[str]:
    """Everything ``compare.methods`` accepts: every loss and every loop-level procedure."""
    return sorted(set(losses.available()) | (set(procedures.PROCEDURES) - {"standard"}))


def run_config(
    cfg: RunConfig, method: str, seed: int, options: dict[str, Any] | None = None
) -> RunConfig:
    """The configuration of one (method, seed) run of a comparison. For a loss, ``options``
    (default: ``compare.options[method]``) are loss options; for a procedure they are
    procedure options, plus optional ``loss`` and ``loss_options`` (JTT and LfF train with
    cross-entropy, DRW with LDAM by default)."""
    if method not in methods():
        raise ValueError(
            f"compare.methods: unknown method {method!r}; available: {', '.join(methods())}"
        )
    opts = dict(cfg.compare.options.get(method, {}) if options is None else options)
    run = copy.deepcopy(cfg)
    if method in procedures.PROCEDURES:
        run.train.procedure = method
        run.loss.name = opts.pop("loss", procedures.DEFAULT_LOSS[method])
        run.loss.options = opts.pop("loss_options", {})
        run.train.procedure_options = opts
    else:
        run.loss.name, run.loss.options = method, opts
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
    return ",".join(f"{k}={v}" for k, v in point.items()) or "default"


def tune(
    cfg: RunConfig, method: str, out: Path, *, resume: bool, show_progress, log
) -> dict[str, Any]:
    """Train every grid point on the tuning seeds and select on validation (never test).
    Writes OUT/<method>/selection.json and returns it."""
    base = dict(cfg.compare.options.get(method, {}))
    seeds = cfg.compare.tune_seeds or cfg.compare.seeds[:1]
    metric = cfg.compare.select_metric
    rows = []
    for point in grid_points(cfg.compare.grid[method]):
        scores = []
        for seed in seeds:
            run_dir = out / method / "grid" / point_label(point) / f"seed{seed}"
            log(f"  tuning {method} {point_label(point)} seed {seed}")
            result = train(
                run_config(cfg, method, seed, {**base, **point}),
                run_dir,
                resume=resume,
                show_progress=show_progress,
            )
            if result.get("val") is None:
                raise ValueError("tuning needs a validation split: data.val_fraction > 0")
            scores.append(result["val"][metric])
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


def run_compare(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    show_progress: bool | None = None,
    log=print,
) -> list[dict[str, Any]]:
    out = Path(out_dir)
    for section in ("options", "grid"):
        unknown = sorted(set(getattr(cfg.compare, section)) - set(cfg.compare.methods))
        if unknown:
            raise ValueError(f"compare.{section} has entries for methods not compared: {unknown}")
    for m in cfg.compare.methods:
        run_config(cfg, m, 0)  # fail early on an unknown method
    if cfg.compare.wise_alphas and not is_backbone(cfg):
        raise ValueError("compare.wise_alphas needs a pre-trained backbone (model.name)")
    chosen = {}
    for m in cfg.compare.methods:
        if m in cfg.compare.grid:
            chosen[m] = tune(cfg, m, out, resume=resume, show_progress=show_progress, log=log)[
                "options"
            ]
    runs = [(m, s) for m in cfg.compare.methods for s in cfg.compare.seeds]
    results = []
    for i, (method, seed) in enumerate(runs, 1):
        run_dir = out / method / f"seed{seed}"
        done = (run_dir / "result.json").exists() and resume
        log(f"[{i}/{len(runs)}] {method} seed {seed}" + (" (done, skipped)" if done else ""))
        results.append(
            train(
                run_config(cfg, method, seed, chosen.get(method)),
                run_dir,
                resume=resume,
                show_progress=show_progress,
            )
        )
        if cfg.compare.wise_alphas and not ((run_dir / "wise.json").exists() and resume):
            run_wise(run_dir, cfg.compare.wise_alphas)
    if cfg.compare.zero_shot:
        for seed in cfg.compare.seeds:
            log(f"zero_shot seed {seed}: evaluated before training")
            run = run_config(cfg, "ce", seed)  # the loss plays no part
            results.append(evaluate_initial(run, out / "zero_shot" / f"seed{seed}"))
    return results
