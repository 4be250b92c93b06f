"""Methods x seeds: one run per pair under OUT/<method>/seed<k>, resumable (finished runs
are skipped, interrupted ones continue from their checkpoint), trained by the executor the
config names (``executors``): every tuning run first, all at once, then the selected
settings on all seeds. A failed run is recorded and the others go on."""

from __future__ import annotations

import copy
import math
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mr2 import losses
from mr2.comparison import PlannedRun, write_manifest
from mr2.engine import executors, identity, memory, procedures, validate
from mr2.engine.config import RunConfig
from mr2.engine.executors import brief
from mr2.engine.progress import RunProgress
from mr2.engine.run import load_data
from mr2.engine.train import evaluate_initial
from mr2.engine.wise import run_wise
from mr2.io import save_json
from mr2.result import RunResult


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


def executor_problems(cfg: RunConfig) -> list[str]:
    """The executor's name, package (extra ``cluster``) and settings (``executors.problems``),
    and settings of another executor that would apply to none."""
    c = cfg.compare
    errors = executors.problems(c.executor, _executor_settings(cfg, Path(".")))
    if c.slurm and c.executor != "slurm":
        errors.append("compare.slurm is set but compare.executor is not 'slurm'")
    if (c.ray_address or c.ray_resources) and c.executor != "ray":
        errors.append(
            "compare.ray_address / ray_resources are set but compare.executor is not 'ray'"
        )
    return errors


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
    if cfg.compare.wise_alphas and cfg.model.name not in validate.BACKBONE_NAMES:
        errors.append("compare.wise_alphas needs a pre-trained backbone (model.name)")
    for method in cfg.compare.methods:
        if method not in methods():
            errors.append(
                f"compare.methods: unknown method {method!r}"
                f"{validate.suggest(method, methods())}; available: {', '.join(methods())}"
            )
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


class RunsFailed(RuntimeError):
    """Some runs of a comparison failed (each recorded in its RUN/failed.json); the others
    finished. ``failures``: (run directory, error) pairs."""

    def __init__(self, failures: list[tuple[Path, str]]) -> None:
        self.failures = failures
        lines = "\n  ".join(f"{d}: {e}" for d, e in failures)
        super().__init__(
            f"{len(failures)} run(s) failed (details in each failed.json); re-run the same "
            f"command to retry them, finished runs are kept:\n  {lines}"
        )


@dataclass
class Orchestra:
    """How a comparison's runs are executed: the executor, the run options, the log and the
    failures met so far."""

    executor: executors.Executor
    options: executors.Options
    log: Any = print
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def run(self, jobs: list[executors.Job]) -> list[RunResult | None]:
        """Train every job (results in job order, None for a failed run). A run another
        process holds (``mr2 compare`` twice on one OUT) is awaited at the end, so two
        processes share the work and no run is trained twice."""
        progress = RunProgress([j.label for j in jobs], self.executor.jobs, self.log)
        outcomes = self.executor.run(jobs, self.options, progress)
        waiting = replace(self.options, resume=True, overwrite=False, wait=True)
        for i, outcome in enumerate(outcomes):
            if outcome.status == "busy":
                self.log(f"{jobs[i].label}: trained by another process, waiting for it")
                outcomes[i] = executors.run_job(jobs[i], waiting)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.status != "done":
                self.failures.append((job.run_dir, outcome.error))
        return [o.result if o.status == "done" else None for o in outcomes]


def tuning_jobs(cfg: RunConfig, method: str, out: Path) -> list[executors.Job]:
    base = dict(cfg.compare.options.get(method, {}))
    seeds = cfg.compare.tune_seeds or cfg.compare.seeds[:1]
    return [
        executors.Job(
            f"tuning {method} {point_label(point)} seed {seed}",
            run_config(cfg, method, seed, {**base, **point}),
            out / method / "grid" / point_label(point) / f"seed{seed}",
        )
        for point in grid_points(cfg.compare.grid[method])
        for seed in seeds
    ]


def select(
    cfg: RunConfig, method: str, out: Path, results: list[RunResult | None]
) -> dict[str, Any] | None:
    """Pick the grid point with the best validation score (never test) from the tuning
    runs' results (in ``tuning_jobs`` order); write OUT/<method>/selection.json. None when a
    tuning run failed: the method is not selected on part of its grid."""
    if any(r is None for r in results):
        return None
    base = dict(cfg.compare.options.get(method, {}))
    seeds = cfg.compare.tune_seeds or cfg.compare.seeds[:1]
    metric = cfg.compare.select_metric
    rows: list[dict[str, Any]] = []
    for i, point in enumerate(grid_points(cfg.compare.grid[method])):
        vals = [r.val for r in results[i * len(seeds) : (i + 1) * len(seeds)] if r is not None]
        if any(v is None for v in vals):
            raise ValueError("tuning needs a validation split: data.val_fraction > 0")
        scores = [float(getattr(v, metric)) for v in vals]
        rows.append(
            {
                "point": point,
                "label": point_label(point),
                "val_scores": scores,
                "val_score": sum(scores) / len(scores),
            }
        )
    if all(math.isnan(r["val_score"]) for r in rows):
        raise ValueError(
            f"validation {metric} is undefined (NaN) at every grid point of {method} (the hard "
            "third needs 3 classes or more, and every class in the validation split): set "
            "compare.select_metric to mean_class or worst_class"
        )
    # first of equals wins; a NaN point never does
    best = max(rows, key=lambda r: -math.inf if math.isnan(r["val_score"]) else r["val_score"])
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


def reuse_tuning_runs(cfg: RunConfig, method: str, selection: dict, out: Path) -> list[int]:
    """The selected grid point's tuning runs are the method's test runs of the tuning seeds
    (the same configuration): copied to OUT/<method>/seed<k> when that holds nothing yet,
    and then reused like any finished run of a matching configuration. Returns the seeds
    copied."""
    copied = []
    seeds = cfg.compare.tune_seeds or cfg.compare.seeds[:1]
    for seed in sorted(set(seeds) & set(cfg.compare.seeds)):
        source = out / method / "grid" / point_label(selection["selected"]) / f"seed{seed}"
        target = out / method / f"seed{seed}"
        wanted = run_config(cfg, method, seed, selection["options"])
        found = identity.inspect_run(source, wanted)
        if target.exists() or found.state is not identity.State.MATCH or not found.finished:
            continue
        tmp = target.with_name(target.name + ".copy.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(*identity.BESIDE))
        tmp.rename(target)
        copied.append(seed)
    return copied


def _check_hard_third(cfg: RunConfig) -> None:
    """Selecting on validation's hard third needs three classes or more: checked on the data
    before any tuning run trains (a K = 2 grid would otherwise be chosen on NaN)."""
    k = load_data(cfg).num_classes
    if k < 3:
        raise ValueError(
            f"compare.select_metric = 'hard' is undefined for {k} classes (the hard third of "
            f"{k} classes is empty): set compare.select_metric to mean_class or worst_class"
        )


def tune_all(cfg: RunConfig, out: Path, orchestra: Orchestra) -> dict[str, dict[str, Any] | None]:
    """Every tuned method's grid, all points at once, then each method's selection."""
    tuned = [m for m in cfg.compare.methods if m in cfg.compare.grid]
    if tuned and cfg.compare.select_metric == "hard":
        _check_hard_third(cfg)
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


def preflight(cfg: RunConfig, out: Path, *, overwrite: bool) -> None:
    """Check, before anything trains, that every run directory known up front (grid points
    and untuned methods) holds nothing of another configuration."""
    problems: list[identity.Inspection] = []
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


def zero_shot_runs(cfg: RunConfig, out: Path, *, overwrite: bool, log=print) -> list[RunResult]:
    """The model before training, evaluated once per seed (``compare.zero_shot``)."""
    results = []
    for seed in cfg.compare.seeds:
        log(f"zero_shot seed {seed}: evaluated before training")
        run = run_config(cfg, "ce", seed)  # the loss plays no part
        folder = out / "zero_shot" / f"seed{seed}"
        results.append(brief(evaluate_initial(run, folder, overwrite=overwrite)))
    return results


def planned_runs(cfg: RunConfig) -> list[PlannedRun]:
    """The runs a comparison reports (``mr2.comparison``): methods x seeds, and the
    zero-shot evaluations when asked."""
    c = cfg.compare
    methods = [*c.methods, *(["zero_shot"] if c.zero_shot else [])]
    return [PlannedRun(m, s, f"{m}/seed{s}") for m in methods for s in c.seeds]


def _executor_settings(cfg: RunConfig, out: Path) -> dict[str, Any]:
    c = cfg.compare
    return {
        "address": c.ray_address,
        "resources": c.ray_resources,
        "slurm": c.slurm,
        "folder": str(out / "slurm"),
        "cluster": c.slurm.get("cluster"),
    }


def _executor(cfg: RunConfig, out: Path) -> executors.Executor:
    settings = _executor_settings(cfg, out)
    return executors.create(cfg.compare.executor, jobs=cfg.compare.jobs, **settings)


def _check_memory(cfg: RunConfig, jobs: int, log) -> None:
    fit = memory.check_shared_gpu(cfg, jobs)
    if fit is not None:
        log(f"GPU memory: {fit.runs} runs per GPU, {fit.per_run / memory.GIB:.2f} GiB each")


def run_compare(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    overwrite: bool = False,
    show_progress: bool | None = None,
    log=print,
) -> list[RunResult]:
    """Train methods x seeds (after tuning the methods with a grid) under OUT with the
    executor ``compare.executor``; the whole comparison is checked before anything is loaded
    or written. Returns the finished runs' results; raises ``RunsFailed`` at the end if some
    runs failed (the others finish, and the report can still be built)."""
    check_compare(cfg)
    out = Path(out_dir)
    preflight(cfg, out, overwrite=overwrite)
    c = cfg.compare
    if c.executor == "pool":  # several runs on one GPU: they must fit, checked up front
        _check_memory(run_config(cfg, c.methods[0], c.seeds[0]), c.jobs, log)
    run_options = executors.Options(resume, overwrite, False, show_progress)
    orchestra = Orchestra(_executor(cfg, out), run_options, log)
    write_manifest(out, c.methods, c.seeds, planned_runs(cfg))
    chosen = tune_all(cfg, out, orchestra)
    options = {m: s["options"] for m, s in chosen.items() if s is not None}
    jobs = [
        executors.Job(
            f"{method} seed {seed}",
            run_config(cfg, method, seed, options.get(method)),
            out / method / f"seed{seed}",
        )
        for method in c.methods
        if not (method in chosen and chosen[method] is None)  # its tuning failed: not run
        for seed in c.seeds
    ]
    results = [r for r in orchestra.run(jobs) if r is not None]
    if c.wise_alphas:
        for job in jobs:
            done = (job.run_dir / "result.json").exists()
            if done and not ((job.run_dir / "wise.json").exists() and resume and not overwrite):
                run_wise(job.run_dir, c.wise_alphas)
    if c.zero_shot:
        results += zero_shot_runs(cfg, out, overwrite=overwrite, log=log)
    if orchestra.failures:
        raise RunsFailed(orchestra.failures)
    return results
