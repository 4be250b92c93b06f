"""GPU memory for several runs on one device, checked before any of them starts: one training
step of the comparison's first run is measured here, on the device (its data resident, the
allocator's peak), and ``jobs`` runs per GPU must fit in the free memory with headroom."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from mr2.engine import fit, run
from mr2.engine.config import RunConfig

CONTEXT_BYTES = 600 * 2**20  # a CUDA context and cuBLAS / cuDNN workspaces, per process
HEADROOM = 0.9  # use at most this share of the free memory
GIB = 2**30


@dataclass(frozen=True)
class Fit:
    """``per_run`` bytes (measured peak + context) for ``runs`` runs per GPU, ``free`` bytes."""

    per_run: int
    runs: int
    free: int

    @property
    def max_runs(self) -> int:
        return int(self.free * HEADROOM // self.per_run)

    @property
    def fits(self) -> bool:
        return self.runs <= self.max_runs

    def message(self) -> str:
        return (
            f"{self.runs} runs at once on one GPU need about {self.runs * self.per_run / GIB:.1f} "
            f"GiB ({self.per_run / GIB:.2f} GiB each, measured on one step), but "
            f"{self.free / GIB:.1f} GiB are free: set compare.jobs (--jobs) to at most "
            f"{max(self.max_runs, 1)}, or free the GPU"
        )


def runs_per_gpu(jobs: int, gpus: int) -> int:
    """How many of ``jobs`` pool workers share each GPU (the pool assigns slot % gpus)."""
    return -(-jobs // gpus) if gpus else 0


def step_peak_bytes(cfg: RunConfig) -> int:
    """Peak GPU memory of one run: its training split resident, one optimiser step, one
    evaluation batch (measured on ``torch.cuda.current_device()``)."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with tempfile.TemporaryDirectory() as folder:
        r = run.prepare(cfg, Path(folder), resume=False)
        x, y = r.resident
        idx = torch.arange(min(cfg.train.batch_size, len(y)))
        aug = torch.Generator().manual_seed(0)
        batch = fit._model_inputs(cfg, x[idx.to(x.device)], aug)
        r.net.train()
        fit._step(r, 0, idx, batch, y[idx.to(y.device)], cfg.optim.lr)
        r.model.eval()
        with torch.no_grad(), r.autocast():
            r.model(x[: cfg.train.eval_batch_size])
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_reserved() - before
        del r, x, y, batch
    torch.cuda.empty_cache()
    return int(peak)


def check_shared_gpu(cfg: RunConfig, jobs: int) -> Fit | None:
    """Raise when ``jobs`` pool workers sharing the GPUs would not fit; None when no GPU is
    shared (CPU runs, or at most one run per GPU)."""
    gpus = torch.cuda.device_count() if cfg.train.device != "cpu" else 0
    if runs_per_gpu(jobs or gpus, gpus) <= 1:  # jobs 0: one run per GPU
        return None
    free, _ = torch.cuda.mem_get_info()
    fit = Fit(step_peak_bytes(cfg) + CONTEXT_BYTES, runs_per_gpu(jobs, gpus), free)
    if not fit.fits:
        raise MemoryError(fit.message())
    return fit
