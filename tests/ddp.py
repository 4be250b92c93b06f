"""Run a function on N gloo CPU processes and collect what each rank returns."""

from __future__ import annotations

import os
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, world: int, init_file: str, out_dir: str, fn: Callable, args: tuple):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result: Any = fn(rank, world, *args)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    except Exception:
        with open(os.path.join(out_dir, f"rank{rank}.err"), "w") as fh:
            fh.write(traceback.format_exc())
        raise
    finally:
        dist.barrier()  # no rank tears gloo down while another is still communicating
        dist.destroy_process_group()


def run(fn: Callable, world: int = 2, *args: Any) -> list[Any]:
    """Spawn ``world`` processes running ``fn(rank, world, *args)``; return their results.

    ``fn`` must live in an importable module (not a test file) so spawned children find it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(_entry, args=(world, init_file, tmp, fn, args), nprocs=world, join=True)
        return [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(world)]
