"""``run_compare``: check, tune, train methods x seeds, WiSE-FT and zero-shot evaluations."""

from __future__ import annotations

from pathlib import Path

from mr2.comparison import write_manifest
from mr2.engine import executors, memory
from mr2.engine.compare.checks import check_compare, preflight
from mr2.engine.compare.orchestra import Orchestra, RunsFailed
from mr2.engine.compare.plan import planned_runs, run_config, run_dir
from mr2.engine.compare.tuning import tune_all
from mr2.engine.config import RunConfig
from mr2.engine.executors import brief
from mr2.engine.train import evaluate_initial
from mr2.engine.wise import run_wise
from mr2.records.result import RunResult


def zero_shot_runs(cfg: RunConfig, out: Path, *, overwrite: bool, log=print) -> list[RunResult]:
    """The model before training, evaluated once per seed (``compare.zero_shot``)."""
    results = []
    for seed in cfg.compare.seeds:
        log(f"zero_shot seed {seed}: evaluated before training")
        run = run_config(cfg, "ce", seed)  # the loss plays no part
        folder = out / "zero_shot" / f"seed{seed}"
        results.append(brief(evaluate_initial(run, folder, overwrite=overwrite)))
    return results


def _executor(cfg: RunConfig, out: Path) -> executors.Executor:
    c = cfg.compare
    return executors.create(c.executor, out, jobs=c.jobs, **c.executor_options)


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
    executor = _executor(cfg, out)
    if executor.shares_gpus:  # several runs on one GPU: they must fit, checked up front
        _check_memory(run_config(cfg, c.methods[0], c.seeds[0]), c.jobs, log)
    run_options = executors.Options(resume, overwrite, False, show_progress)
    orchestra = Orchestra(executor, run_options, log)
    write_manifest(out, c.methods, c.seeds, planned_runs(cfg))
    chosen = tune_all(cfg, out, orchestra)
    options = {m: s.options for m, s in chosen.items() if s is not None}
    jobs = [  # seed by seed: a comparison stopped early has every method on its first seeds
        executors.Job(
            f"{method} seed {seed}",
            run_config(cfg, method, seed, options.get(method)),
            run_dir(out, method, seed),
        )
        for seed in c.seeds
        for method in c.methods
        if not (method in chosen and chosen[method] is None)  # its tuning failed: not run
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
