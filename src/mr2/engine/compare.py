"""Methods x seeds: one run per pair under OUT/<method>/seed<k>, resumable (finished runs
are skipped, interrupted ones continue from their checkpoint), then the report."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mr2 import losses
from mr2.engine.config import RunConfig
from mr2.engine.train import train


def run_config(cfg: RunConfig, method: str, seed: int) -> RunConfig:
    """The configuration of one (method, seed) run of a comparison."""
    if method not in losses.available():
        raise ValueError(
            f"compare.methods: unknown loss {method!r}; available: {', '.join(losses.available())}"
        )
    run = copy.deepcopy(cfg)
    run.loss.name = method
    run.loss.options = dict(cfg.compare.options.get(method, {}))
    run.train.seed = seed
    return run


def run_compare(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    show_progress: bool | None = None,
    log=print,
) -> list[dict[str, Any]]:
    out = Path(out_dir)
    unknown = sorted(set(cfg.compare.options) - set(cfg.compare.methods))
    if unknown:
        raise ValueError(f"compare.options has entries for methods not compared: {unknown}")
    runs = [(m, s) for m in cfg.compare.methods for s in cfg.compare.seeds]
    results = []
    for i, (method, seed) in enumerate(runs, 1):
        run_dir = out / method / f"seed{seed}"
        done = (run_dir / "result.json").exists() and resume
        log(f"[{i}/{len(runs)}] {method} seed {seed}" + (" (done, skipped)" if done else ""))
        results.append(
            train(
                run_config(cfg, method, seed), run_dir, resume=resume, show_progress=show_progress
            )
        )
    return results
