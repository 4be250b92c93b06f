"""``pool``: worker processes on this machine (``concurrent.futures``, spawned); with GPUs
each worker gets its own through ``CUDA_VISIBLE_DEVICES``."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from mr2.engine.executors.base import (
    Callback,
    Executor,
    Job,
    Options,
    Outcome,
    record_failure,
    run_job,
)
from mr2.engine.executors.registry import register

PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


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


@register("pool", "worker processes on this machine, one GPU or a share of the cores each")
class PoolExecutor(Executor):
    """``jobs`` worker processes on this machine (spawned, so no state is inherited). A
    worker that dies (killed, out of memory) breaks the pool, which stops every run in
    flight: each of those is then retried alone, in a pool of its own, so that only the run
    whose worker dies again is recorded as failed; the others go on in a fresh pool."""

    shares_gpus = True

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
