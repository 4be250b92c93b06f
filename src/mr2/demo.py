"""The demo: ERM vs MR² (and two cheap baselines) on Fashion-MNIST over 3 seeds.

Falls back to scikit-learn's digits, saying so, when Fashion-MNIST is neither on disk nor
downloadable. Budget: under 5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from mr2 import report
from mr2.data import load
from mr2.data.files import DATA_DIR_HINT
from mr2.engine.compare import run_compare
from mr2.engine.config import RunConfig, apply

DEMO: dict[str, dict[str, Any]] = {
    "data": {"name": "fashion_mnist", "val_fraction": 0.1},
    "model": {"name": "mlp", "options": {"width": 256, "depth": 2}},
    "optim": {
        "name": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "warmup_epochs": 0.5,
        "schedule": "cosine",
    },
    "train": {"epochs": 5, "batch_size": 128},
    "compare": {
        "methods": ["ce", "mr2", "label_smoothing", "focal"],
        "seeds": [0, 1, 2],
        "reference": "ce",
        # settings selected on validation in benchmarks/fashion_mnist (MLP study)
        "options": {
            "mr2": {"lambda_rep": 0.02},
            "label_smoothing": {"smoothing": 0.05},
            "focal": {"gamma": 1.0},
        },
    },
}


def demo_config(data_dir: str = "", quick: bool = False, log=print) -> RunConfig:
    cfg = apply(RunConfig(), copy.deepcopy(DEMO))
    cfg.data.data_dir = data_dir
    try:
        load("fashion_mnist", data_dir=data_dir, val_fraction=0.1)
    except (OSError, ValueError) as err:  # missing, corrupt or unreadable files
        why = str(err).replace(DATA_DIR_HINT, "pass mr2 demo --data-dir DIR")
        log(f"Fashion-MNIST is not available ({why}).\nFalling back to scikit-learn's digits.")
        cfg.data.name, cfg.data.data_dir, cfg.data.train_subset = "digits", "", 0
        cfg.train.epochs, cfg.train.batch_size = 30, 64
    if quick:
        cfg.train.epochs, cfg.compare.seeds = 2, [0]
        cfg.data.train_subset = min(cfg.data.train_subset or 10_000, 5_000)
    return cfg


def run_demo(
    out_dir: str | Path | None = None, *, data_dir: str = "", quick: bool = False, log=print
) -> report.Report:
    """The demo into ``out_dir`` (default runs/demo, or runs/demo-quick with ``quick``: the
    two never share runs, and a run of another configuration is never reused)."""
    t0 = time.time()
    out_dir = out_dir or ("runs/demo-quick" if quick else "runs/demo")
    cfg = demo_config(data_dir, quick, log)
    log(
        f"mr2 demo: {', '.join(cfg.compare.methods)} on {cfg.data.name}, seeds "
        f"{cfg.compare.seeds}, {cfg.model.name}, {cfg.train.epochs} epochs -> {out_dir}"
    )
    run_compare(cfg, out_dir, show_progress=False, log=log)
    built = report.build([out_dir], out_dir, reference=cfg.compare.reference)
    log("\n" + built.text() + "\n")
    log(
        f"Report: {built.path}\nPlots: {', '.join(str(p) for p in built.plots)}\n"
        f"Finished in {time.time() - t0:.0f} s."
    )
    return built
