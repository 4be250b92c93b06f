"""A tiny, fast run configuration shared by the engine tests."""

import os
import subprocess
import sys
from pathlib import Path

from mr2.engine import config

TINY = {
    "data": {
        "name": "synthetic",
        "options": {"num_classes": 5, "dim": 8, "n_train": 80, "n_test": 40},
    },
    "model": {"name": "mlp", "options": {"width": 32}},
    "train": {"epochs": 2, "batch_size": 32},
}


def tiny_config(**sections):
    """The tiny config; ``section__key=value`` keyword arguments override single keys."""
    cfg = config.from_dict({k: dict(v) for k, v in TINY.items()})
    for key, value in sections.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def tiny_comparison(out: Path, methods: list[str], seeds: list[int]) -> Path:
    """A finished tiny comparison of ``methods`` x ``seeds`` in ``out``."""
    from mr2.engine.compare import run_compare

    cfg = tiny_config()
    cfg.compare.methods, cfg.compare.seeds = methods, seeds
    run_compare(cfg, out, show_progress=False, log=lambda *_: None)
    return out


def torchrun_train(cfg_file: Path, out: Path, nproc: int = 2) -> None:
    """``mr2 train`` under torchrun with ``nproc`` CPU (gloo) processes; fails with stderr."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "mr2",
        "train",
        "--config",
        str(cfg_file),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
