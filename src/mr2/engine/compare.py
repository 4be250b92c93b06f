"""Methods x seeds: one run per pair under OUT/<method>/seed<k>, resumable (finished runs
are skipped, interrupted ones continue from their checkpoint), then the report."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mr2 import losses
from mr2.engine import procedures
from mr2.engine.config import RunConfig
from mr2.engine.train import train


def methods() -> list[str]:
    """Everything ``compare.methods`` accepts: every loss and every loop-level procedure."""
    return sorted(set(losses.available()) | (set(procedures.PROCEDURES) - {"standard"}))


def run_config(
    cfg: RunConfig, method: str, seed: int, options: dict[str, Any] | None = None
) -> RunConfig:
    """The configuration of one (method, seed) run of a comparison. For a loss, ``options``
    (default: ``compare.options[method]``) are loss options; for a procedure they are
    procedure options, plus optional ``loss`` and ``loss_options`` (JTT and LfF train with
    cross-entropy, DRW with LDAM by default)."""
    if method not in methods():
        raise ValueError(
            f"compare.methods: unknown method {method!r}; available: {', '.join(methods())}"
        )
    opts = dict(cfg.compare.options.get(method, {}) if options is None else options)
    run = copy.deepcopy(cfg)
    if method in procedures.PROCEDURES:
        run.train.procedure = method
        run.loss.name = opts.pop("loss", procedures.DEFAULT_LOSS[method])
        run.loss.options = opts.pop("loss_options", {})
        run.train.procedure_options = opts
    else:
        run.loss.name, run.loss.options = method, opts
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
    for m in cfg.compare.methods:
        run_config(cfg, m, 0)  # fail early on an unknown method
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
