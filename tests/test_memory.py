"""Several runs on one GPU: the memory check's arithmetic, and that it stays out of the way
where no GPU is shared. (On a GPU, benchmarks/gpu_study.sh runs it for real.)"""

from __future__ import annotations

import pytest
import torch

from mr2.engine import memory
from mr2.engine.config import RunConfig

GIB = 2**30


def test_runs_per_gpu_follows_the_pools_slot_assignment():
    # the pool gives worker slot s the GPU s % gpus: 5 workers on 2 GPUs put 3 on GPU 0
    assert [memory.runs_per_gpu(j, 2) for j in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3]
    assert memory.runs_per_gpu(4, 1) == 4 and memory.runs_per_gpu(4, 0) == 0


def test_fit_uses_headroom_and_names_the_jobs_that_fit():
    fit = memory.Fit(per_run=2 * GIB, runs=8, free=10 * GIB)
    assert fit.max_runs == 4  # 0.9 * 10 GiB // 2 GiB
    assert not fit.fits
    assert "8 runs at once on one GPU need about 16.0 GiB" in fit.message()
    assert "compare.jobs (--jobs) to at most 4" in fit.message()
    assert memory.Fit(per_run=2 * GIB, runs=4, free=10 * GIB).fits


def test_check_is_skipped_without_a_shared_gpu(monkeypatch):
    cfg = RunConfig()
    called = []
    monkeypatch.setattr(memory, "step_peak_bytes", lambda c: called.append(c) or 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert memory.check_shared_gpu(cfg, 8) is None  # no GPU: CPU workers
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert memory.check_shared_gpu(cfg, 4) is None  # one run per GPU
    assert memory.check_shared_gpu(cfg, 0) is None  # jobs 0: one per GPU
    cfg.train.device = "cpu"
    assert memory.check_shared_gpu(cfg, 8) is None  # runs on the CPU
    assert called == []


def test_check_measures_and_refuses_what_does_not_fit(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (8 * GIB, 80 * GIB))
    monkeypatch.setattr(memory, "step_peak_bytes", lambda c: GIB)
    fit = memory.check_shared_gpu(RunConfig(), 4)
    assert fit is not None and fit.per_run == GIB + memory.CONTEXT_BYTES and fit.runs == 4
    with pytest.raises(MemoryError, match="at most 4"):
        memory.check_shared_gpu(RunConfig(), 8)


def test_step_measurement_runs_a_real_step(monkeypatch):
    """The measuring code trains one step and evaluates one batch (here on the CPU, the
    CUDA counters replaced by fakes that record the order of calls)."""
    calls = []
    for name in ("empty_cache", "reset_peak_memory_stats", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, lambda *a, n=name: calls.append(n))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 100)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 5000)
    cfg = RunConfig()
    cfg.data.name, cfg.model.name, cfg.train.device = "synthetic", "mlp", "cpu"
    cfg.train.batch_size = 32
    stepped = []
    from mr2.engine import fit

    real = fit._step
    monkeypatch.setattr(fit, "_step", lambda *a: stepped.append(a[4].shape) or real(*a))
    assert memory.step_peak_bytes(cfg) == 4900
    assert stepped == [torch.Size([32])] and calls[-1] == "empty_cache"
