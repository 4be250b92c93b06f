"""Grids: every tuned method's tuning runs at once, the point chosen on validation (never
test), and the chosen point's runs reused as the method's runs of the tuning seeds."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from mr2.engine import executors, identity
from mr2.engine.compare.orchestra import Orchestra
from mr2.engine.compare.plan import grid_points, point_label, run_config, run_dir, tune_seeds
from mr2.engine.config import RunConfig
from mr2.engine.run import load_data
from mr2.records.result import RunResult
from mr2.records.selection import GridPoint, Selection
from mr2.records.storage import save_json


def tuning_jobs(cfg: RunConfig, method: str, out: Path) -> list[executors.Job]:
    base = dict(cfg.compare.options.get(method, {}))
    seeds = tune_seeds(cfg)
    return [
        executors.Job(
            f"tuning {method} {point_label(point)} seed {seed}",
            run_config(cfg, method, seed, {**base, **point}),
            run_dir(out, method, seed, point),
        )
        for point in grid_points(cfg.compare.grid[method])
        for seed in seeds
    ]


def select(
    cfg: RunConfig, method: str, out: Path, results: list[RunResult | None]
) -> Selection | None:
    """Pick the grid point with the best validation score (never test) from the tuning
    runs' results (in ``tuning_jobs`` order); write OUT/<method>/selection.json. None when a
    tuning run failed: the method is not selected on part of its grid."""
    if any(r is None for r in results):
        return None
    seeds = tune_seeds(cfg)
    metric = cfg.compare.select_metric
    rows = []
    for i, point in enumerate(grid_points(cfg.compare.grid[method])):
        vals = [r.val for r in results[i * len(seeds) : (i + 1) * len(seeds)] if r is not None]
        if any(v is None for v in vals):
            raise ValueError("tuning needs a validation split: data.val_fraction > 0")
        scores = [float(getattr(v, metric)) for v in vals]
        rows.append(GridPoint(point, point_label(point), scores, sum(scores) / len(scores)))
    if all(math.isnan(r.val_score) for r in rows):
        raise ValueError(
            f"validation {metric} is undefined (NaN) at every grid point of {method} (the hard "
            "third needs 3 classes or more, and every class in the validation split): set "
            "compare.select_metric to mean_class or worst_class"
        )
    # first of equals wins; a NaN point never does
    best = max(rows, key=lambda r: -math.inf if math.isnan(r.val_score) else r.val_score)
    base = dict(cfg.compare.options.get(method, {}))
    selection = Selection(
        method, f"validation {metric}", list(seeds), rows, best.point, {**base, **best.point}
    )
    save_json(selection.to_dict(), out / method / "selection.json")
    return selection


def reuse_tuning_runs(cfg: RunConfig, method: str, selection: Selection, out: Path) -> list[int]:
    """The selected grid point's tuning runs are the method's test runs of the tuning seeds
    (the same configuration): copied to OUT/<method>/seed<k> when that holds nothing yet,
    and then reused like any finished run of a matching configuration. Returns the seeds
    copied."""
    copied = []
    seeds = tune_seeds(cfg)
    for seed in sorted(set(seeds) & set(cfg.compare.seeds)):
        source = run_dir(out, method, seed, selection.selected)
        target = run_dir(out, method, seed)
        wanted = run_config(cfg, method, seed, selection.options)
        found = identity.inspect_run(source, wanted)
        if target.exists() or found.state is not identity.State.MATCH or not found.finished:
            continue
        tmp = target.with_name(target.name + ".copy.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(*identity.BESIDE))
        tmp.rename(target)
        copied.append(seed)
    return copied


def check_hard_third(cfg: RunConfig) -> None:
    """Selecting on validation's hard third needs three classes or more: checked on the data
    before any tuning run trains (a K = 2 grid would otherwise be chosen on NaN)."""
    k = load_data(cfg).num_classes
    if k < 3:
        raise ValueError(
            f"compare.select_metric = 'hard' is undefined for {k} classes (the hard third of "
            f"{k} classes is empty): set compare.select_metric to mean_class or worst_class"
        )


def tune_all(cfg: RunConfig, out: Path, orchestra: Orchestra) -> dict[str, Selection | None]:
    """Every tuned method's grid, all points at once, then each method's selection."""
    tuned = [m for m in cfg.compare.methods if m in cfg.compare.grid]
    if tuned and cfg.compare.select_metric == "hard":
        check_hard_third(cfg)
    per_method = {m: tuning_jobs(cfg, m, out) for m in tuned}
    results = orchestra.run([job for jobs in per_method.values() for job in jobs])
    chosen, at = {}, 0
    for method, jobs in per_method.items():
        selection = select(cfg, method, out, results[at : at + len(jobs)])
        chosen[method] = selection
        at += len(jobs)
        if selection is not None:
            reuse_tuning_runs(cfg, method, selection, out)
    return chosen
