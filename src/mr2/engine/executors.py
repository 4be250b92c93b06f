"""Where a comparison's runs train: here one after another (``local``), on a pool of worker
processes (``pool``), as Ray tasks (``ray``) or as SLURM jobs through submitit (``slurm``).

Every executor runs the same ``run_job`` on the same ``Job`` and hands back the same
``Outcome``: a run is trained by ``train`` wherever it runs, so its numbers do not depend on
the executor (on CPU, with ``train.threads`` fixed, they are equal). A run that raises is
recorded in ``RUN/failed.json`` (the error, its traceback and the tail of the run's log)
and does not stop the others; a run whose directory another process holds is reported
``busy`` and awaited at the end by the caller. Nothing here schedules: the pool is
``concurrent.futures``, the cluster engines are Ray's and submitit's own.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from mr2 import io
from mr2.engine import identity
from mr2.engine.config import RunConfig
from mr2.engine.train import method_label, train
from mr2.result import RunResult

EXECUTORS = ("local", "pool", "ray", "slurm")
FAILED = identity.FAILED
SLURM_ALIASES = {"partition": "slurm_partition", "time": "timeout_min"}
SUBMITIT_GENERIC = (
    "name",
    "timeout_min",
    "mem_gb",
    "nodes",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "stderr_to_stdout",
)


@dataclass
class Job:
    label: str  # what the progress lines call it, e.g. "mr2 seed 1"
    cfg: RunConfig
    run_dir: Path


@dataclass
class Outcome:
    status: str  # "done", "busy" (another process holds the run) or "failed"
    result: RunResult | None = None
    error: str = ""
    seconds: float = 0.0
    reused: bool = False  # finished before: its result was read, nothing trained


@dataclass
class Options:
    resume: bool = True
    overwrite: bool = False
    wait: bool = False
    show_progress: bool | None = False


def brief(result: RunResult) -> RunResult:
    """What a comparison keeps in memory of a finished run: everything but the per-epoch
    history and the confusion matrix, left empty (megabytes per run at K = 1000, so a long
    comparison would grow without bound); the whole record stays in the run's result.json."""
    return replace(result, history=[], test=replace(result.test, confusion=[]))


def _log_tail(run_dir: Path, lines: int = 5) -> list[str]:
    log = Path(run_dir) / "log.jsonl"
    return log.read_text().splitlines()[-lines:] if log.is_file() else []


def run_job(job: Job, options: Options) -> Outcome:
    """Train one run; never raises for a failed run (see the module docstring)."""
    start = time.time()
    failed = Path(job.run_dir) / FAILED
    found = identity.inspect_run(job.run_dir, job.cfg)
    reused = found.finished and options.resume  # a finished run of this configuration
    try:
        result = train(
            job.cfg,
            job.run_dir,
            resume=options.resume,
            overwrite=options.overwrite,
            wait=options.wait,
            show_progress=options.show_progress,
        )
    except identity.RunBusyError as err:
        return Outcome("busy", error=str(err), seconds=time.time() - start)
    except Exception as err:
        record = {
            "run": job.label,
            "method": method_label(job.cfg),
            "seed": job.cfg.train.seed,
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
            "log_tail": _log_tail(job.run_dir),
            "host": os.uname().nodename,
            "pid": os.getpid(),
        }
        io.save_json(record, failed)
        return Outcome("failed", error=str(record["error"]), seconds=time.time() - start)
    failed.unlink(missing_ok=True)  # a retried run that now finished is no failure
    return Outcome("done", brief(result), seconds=time.time() - start, reused=reused)


Callback = Callable[[int, Outcome | None], None]  # (job index, None when started)


@dataclass
class Executor:
    """Base: runs the jobs here, one after another (``local``)."""

    jobs: int = 1
    settings: dict[str, Any] = field(default_factory=dict)

    def run(self, jobs: list[Job], options: Options, report: Callback) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for i, job in enumerate(jobs):
            report(i, None)
            outcomes.append(run_job(job, options))
            report(i, outcomes[-1])
        return outcomes


def _pool_worker_init(slots: Any, threads: int, gpus_per_worker: int, gpus: int) -> None:
    """Each pool worker takes a slot: its own GPU(s), or its share of the CPU threads (a
    run's ``train.threads`` still wins)."""
    slot = slots.get()
    if gpus:
        first = (slot * gpus_per_worker) % gpus
        devices = [str((first + k) % gpus) for k in range(gpus_per_worker)]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    torch.set_num_threads(threads)


class PoolExecutor(Executor):
    """``jobs`` worker processes on this machine (spawned, so no state is inherited)."""

    def run(self, jobs: list[Job], options: Options, report: Callback) -> list[Outcome]:
        if not jobs:
            return []
        workers = min(self.jobs, len(jobs))
        gpus = torch.cuda.device_count()
        ctx = mp.get_context("spawn")
        slots = ctx.Manager().Queue()
        for slot in range(workers):
            slots.put(slot)
        init = (slots, max(1, (os.cpu_count() or 1) // workers), max(1, gpus // workers), gpus)
        outcomes: list[Outcome | None] = [None] * len(jobs)
        with ProcessPoolExecutor(workers, ctx, _pool_worker_init, init) as pool:
            futures = {pool.submit(run_job, job, options): i for i, job in enumerate(jobs)}
            for i in range(workers):  # FIFO: the first `workers` jobs start now
                report(i, None)
            started = workers
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = futures[future]
                    outcomes[i] = _outcome(future)
                    report(i, outcomes[i])
                    if started < len(jobs):
                        report(started, None)
                        started += 1
        return [o for o in outcomes if o is not None]


def _outcome(future) -> Outcome:
    try:
        return future.result()
    except Exception as err:  # the worker process itself died (killed, out of memory)
        return Outcome("failed", error=f"worker died: {type(err).__name__}: {err}")


class RayExecutor(Executor):
    """Each run a Ray task with its resources (``compare.ray_resources``: num_cpus, default
    ``train.threads`` or 1; num_gpus, default 1 on CUDA runs), on ``compare.ray_address``
    or a local Ray started on demand (and shut down after)."""

    def run(self, jobs: list[Job], options: Options, report: Callback) -> list[Outcome]:
        import ray  # extra "cluster"

        started_here = not ray.is_initialized()
        if started_here:
            address = self.settings.get("address") or None
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.jobs, include_dashboard=False, log_to_driver=False)
        try:
            task = ray.remote(run_job)
            refs = {}
            for i, job in enumerate(jobs):
                refs[task.options(**self._resources(job)).remote(job, options)] = i
                report(i, None)
            outcomes: list[Outcome | None] = [None] * len(jobs)
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                i = refs[done[0]]
                try:
                    outcomes[i] = ray.get(done[0])
                except Exception as err:  # the task's worker died
                    outcomes[i] = Outcome("failed", error=f"ray task failed: {err}")
                report(i, outcomes[i])
            return [o for o in outcomes if o is not None]
        finally:
            if started_here:
                ray.shutdown()

    def _resources(self, job: Job) -> dict[str, Any]:
        cuda = job.cfg.train.device == "cuda" or (
            job.cfg.train.device == "auto" and torch.cuda.is_available()
        )
        default = {"num_cpus": job.cfg.train.threads or 1, "num_gpus": 1 if cuda else 0}
        return {**default, **self.settings.get("resources", {})}


def slurm_parameters(settings: dict[str, Any]) -> dict[str, Any]:
    """``compare.slurm`` as submitit parameters (``partition`` and ``time`` in minutes are
    accepted as aliases; ``cluster`` picks submitit's backend, e.g. "local" for tests)."""
    params = {SLURM_ALIASES.get(k, k): v for k, v in settings.items() if k != "cluster"}
    unknown = [
        k
        for k in params
        if k not in SUBMITIT_GENERIC and not k.startswith(("slurm_", "local_", "debug_"))
    ]
    if unknown:
        raise ValueError(
            f"compare.slurm: unknown setting(s) {unknown}; use submitit's names "
            f"({', '.join(SUBMITIT_GENERIC)}, slurm_*) or partition / time"
        )
    return params


class SlurmExecutor(Executor):
    """Each run a SLURM job (one job array) through submitit; logs under OUT/slurm/."""

    def run(self, jobs: list[Job], options: Options, report: Callback) -> list[Outcome]:
        import submitit  # extra "cluster"

        if not jobs:
            return []
        folder = Path(self.settings["folder"])
        executor = submitit.AutoExecutor(folder=folder, cluster=self.settings.get("cluster"))
        params = slurm_parameters(self.settings.get("slurm", {}))
        if self.jobs:
            params.setdefault("slurm_array_parallelism", self.jobs)
        executor.update_parameters(**{"name": "mr2", **params})
        with executor.batch():
            submitted = [executor.submit(run_job, job, options) for job in jobs]
        for i in range(len(jobs)):
            report(i, None)
        outcomes: list[Outcome | None] = [None] * len(jobs)
        for i in _as_done(submitted):
            try:
                outcomes[i] = submitted[i].result()
            except Exception as err:  # the job itself failed (time limit, node failure)
                outcomes[i] = Outcome("failed", error=f"slurm job failed: {err}")
            report(i, outcomes[i])
        return [o for o in outcomes if o is not None]


def _as_done(submitted: list[Any], poll: float = 0.5) -> Iterator[int]:
    left = set(range(len(submitted)))
    while left:
        finished = [i for i in sorted(left) if submitted[i].done()]
        yield from finished
        left -= set(finished)
        if left and not finished:
            time.sleep(poll)


def create(name: str, *, jobs: int = 0, **settings: Any) -> Executor:
    """Executor ``name`` with ``jobs`` parallel runs (0: one per GPU, else per CPU core)."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; available: {', '.join(EXECUTORS)}")
    if name == "local":
        return Executor(1, settings)
    if name == "slurm":  # 0: as many at once as the cluster allows
        return SlurmExecutor(jobs, settings)
    jobs = jobs or torch.cuda.device_count() or os.cpu_count() or 1
    kind = {"pool": PoolExecutor, "ray": RayExecutor, "slurm": SlurmExecutor}[name]
    return kind(jobs, settings)
