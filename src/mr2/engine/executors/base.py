"""What every executor shares: a ``Job`` (one run), its ``Outcome``, ``run_job`` (the one
function that trains a run wherever it runs: numbers never depend on the executor) and the
``Executor`` base, which runs the jobs here one after another."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from mr2 import plugins
from mr2.engine import identity
from mr2.engine.config import RunConfig
from mr2.engine.train import method_label, train
from mr2.records import storage
from mr2.records.result import RunResult

FAILED = identity.FAILED


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
    storage.save_json(record, Path(job.run_dir) / FAILED)
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
    """Base of every executor: runs the jobs here, one after another (which is ``local``).
    A subclass overrides ``run`` (and ``workers`` / ``problems`` where it differs), names
    the options it takes in ``OPTIONS`` and is registered with
    ``mr2.engine.executors.register``. ``options`` are its own
    (``compare.executor_options``, checked by ``problems`` before anything trains), ``out``
    the comparison's folder (where it may keep its logs)."""

    jobs: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    out: Path = Path(".")
    shares_gpus = False  # runs share this machine's GPUs: their memory is checked up front
    OPTIONS: ClassVar[dict[str, str]] = {}  # option name -> what it is (none: takes none)

    @staticmethod
    def workers(jobs: int) -> int:
        """How many runs at once for ``compare.jobs`` (0: one per GPU, else per core)."""
        return jobs or torch.cuda.device_count() or os.cpu_count() or 1

    @classmethod
    def problems(cls, options: dict[str, Any]) -> list[str]:
        """What is wrong with ``options`` (``compare.executor_options``), without raising:
        here, names it does not take (a subclass adds its own checks)."""
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if not unknown:
            return []
        takes = ", ".join(f"{k} ({v})" for k, v in cls.OPTIONS.items()) or "none"
        return [f"compare.executor_options: {unknown} are not options of it; it takes {takes}"]

    def run(self, jobs: list[Job], options: Options, report: Callback) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for i, job in enumerate(jobs):
            report(i, None)
            outcomes.append(run_job(job, options))
            report(i, outcomes[-1])
        return outcomes
