"""Run a function on N gloo CPU processes and collect what each rank returns.

Hardened against the abort seen once under load ("terminate called without an active
exception", a gloo worker killed by SIGABRT): that message is C++'s ``std::terminate`` for
a thread still running when its owner is destroyed, which happens when a DDP reducer or
another holder of the process group is garbage-collected at interpreter exit, after
``destroy_process_group``. So each rank collects its garbage before the final barrier and
tears the group down itself; the barrier is reached only on success (a failed rank never
enters a collective its peers may not match), every collective has an explicit timeout,
and a failure comes back as one error carrying each failed rank's traceback.
"""

from __future__ import annotations

import datetime
import gc
import os
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = datetime.timedelta(seconds=60)  # a stuck collective fails instead of hanging


def _entry(rank: int, world: int, init_file: str, out_dir: str, fn: Callable, args: tuple):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=TIMEOUT
    )
    try:
        result: Any = fn(rank, world, *args)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
        del result
        gc.collect()  # DDP reducers and work objects go while the group is alive
        dist.barrier()  # no rank tears gloo down while another still communicates
    except BaseException:
        Path(out_dir, f"rank{rank}.err").write_text(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


def run(fn: Callable, world: int = 2, *args: Any) -> list[Any]:
    """Spawn ``world`` processes running ``fn(rank, world, *args)``; return their results.

    ``fn`` must live in an importable module (not a test file) so spawned children find it.
    A rank that fails or dies is an ``AssertionError`` with the tracebacks the ranks wrote.
    """
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        try:
            mp.spawn(_entry, args=(world, init_file, tmp, fn, args), nprocs=world, join=True)
        except Exception as err:
            said = "\n".join(
                f"--- rank {r} ---\n{Path(tmp, f'rank{r}.err').read_text()}"
                for r in range(world)
                if Path(tmp, f"rank{r}.err").is_file()
            )
            raise AssertionError(
                f"a rank failed: {err}\n{said or '(no traceback written)'}"
            ) from err
        return [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(world)]
