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

import ctypes
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from mr2 import io, plugins
from mr2.engine import identity
from mr2.engine.config import RunConfig
from mr2.engine.train import method_label, train
from mr2.result import RunResult

EXECUTORS = ("local", "pool", "ray", "slurm")
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
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


def record_failure(job: Job, error: str, trace: str, start: float) -> Outcome:
    """Write RUN/failed.json (the error, traceback, log tail) and the failed outcome."""
    record = {
        "run": job.label,
        "method": method_label(job.cfg),
        "seed": job.cfg.train.seed,
        "error": error,
        "traceback": trace,
        "log_tail": _log_tail(job.run_dir),
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }
    io.save_json(record, Path(job.run_dir) / FAILED)
    return Outcome("failed", error=error, seconds=time.time() - start)


def run_job(job: Job, options: Options) -> Outcome:
    """Train one run; never raises for a failed run (see the module docstring)."""
    start = time.time()
    plugins.load()  # a worker process: the user's registered models and datasets
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
        return record_failure(job, f"{type(err).__name__}: {err}", traceback.format_exc(), start)
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


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when the comparison's process dies, whatever
    kills it (kill -9 included), so no worker outlives a stopped comparison."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _pool_worker_init(
    slots: Any, threads: int, gpus_per_worker: int, gpus: int, parent: int
) -> None:
    """Each pool worker dies with the comparison and takes a slot: its own GPU(s), or its
    share of the CPU threads (a run's ``train.threads`` still wins)."""
    _die_with_parent(parent)
    slot = slots.get()
    if gpus:
        first = (slot * gpus_per_worker) % gpus
        devices = [str((first + k) % gpus) for k in range(gpus_per_worker)]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    torch.set_num_threads(threads)


class PoolExecutor(Executor):
    """``jobs`` worker processes on this machine (spawned, so no state is inherited). A
    worker that dies (killed, out of memory) breaks the pool, which stops every run in
    flight: each of those is then retried alone, in a pool of its own, so that only the run
    whose worker dies again is recorded as failed; the others go on in a fresh pool."""

    def run(self, jobs: list[Job], options: Options, report: Callback) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(jobs)
        todo = list(range(len(jobs)))
        while todo:
            for i in self._round(jobs, todo, options, report, outcomes):
                if self._round(jobs, [i], options, report, outcomes):  # died again, alone
                    why = "its worker process died twice (killed, or out of memory)"
                    outcomes[i] = record_failure(jobs[i], why, "", time.time())
                    report(i, outcomes[i])
            todo = [i for i in todo if outcomes[i] is None]
        return [o for o in outcomes if o is not None]

    def _round(self, jobs, todo, options, report, outcomes) -> list[int]:
        """Run ``todo`` on a fresh pool until done or a worker dies; the indices in flight
        when it died (their outcomes left None)."""
        workers = min(self.jobs, len(todo))
        gpus = torch.cuda.device_count()
        ctx = mp.get_context("spawn")
        slots = ctx.Queue()  # handed to the workers as they start: no manager process
        for slot in range(workers):
            slots.put(slot)
        threads = max(1, (os.cpu_count() or 1) // workers)
        init = (slots, threads, max(1, gpus // workers), gpus, os.getpid())
        pool = ProcessPoolExecutor(workers, ctx, _pool_worker_init, init)
        try:
            futures = {pool.submit(run_job, jobs[i], options): i for i in todo}
            died = _collect(futures, list(todo), workers, report, outcomes)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): stop the runs in flight now
            _stop_workers(pool)
            raise
        pool.shutdown(wait=True)
        slots.close()
        return died


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's workers (their runs resume from their checkpoints next time) instead of
    waiting for the runs in flight to finish."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _collect(futures, queue: list[int], workers: int, report, outcomes) -> list[int]:
    """Outcomes as the pool's futures finish (FIFO: the first ``workers`` run first); the
    indices in flight when a worker died, or [] when every one finished."""
    running: list[int] = []

    def start_next() -> None:
        if queue:
            running.append(queue.pop(0))
            report(running[-1], None)

    for _ in range(workers):
        start_next()
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        # in submission order: a run that started after another finished in the same
        # wait is only in ``running`` once that one's finish started it
        for future in sorted(done, key=futures.__getitem__):
            if isinstance(future.exception(), BrokenProcessPool):
                return running
            i = futures[future]
            outcomes[i] = future.result()
            if i in running:
                running.remove(i)
            report(i, outcomes[i])
            start_next()
    return []


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
