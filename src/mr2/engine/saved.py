"""A finished run's saved model: loaded back (``load_saved_run``, also behind ``mr2
diagnose``) and evaluated (``mr2 evaluate RUN_DIR``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mr2.data import Dataset, Split
from mr2.engine import config, identity
from mr2.engine.config import RunConfig
from mr2.engine.context import Context, cpu_context
from mr2.engine.evaluate import evaluate
from mr2.engine.run import load_final_model, load_run_data
from mr2.metrics import disparity_summary
from mr2.metrics.hard import crossfit_groups
from mr2.records import storage
from mr2.records.result import read_result


@dataclass
class SavedRun:
    cfg: RunConfig  # as evaluated (the run's config.toml with any data.* overrides)
    dataset: Dataset
    model: nn.Module  # final.pt, on ``ctx.device``, in eval mode
    split: Split  # the split asked for
    ctx: Context


def _check_overrides(overrides: Sequence[str]) -> None:
    bad = [o for o in overrides if not o.startswith("data.")]
    if bad:
        raise ValueError(f"only data.* settings can change for an evaluation, got {bad}")


def load_saved_run(
    run_dir: str | Path,
    split: str = "test",
    overrides: Sequence[str] = (),
    ctx: Context | None = None,
) -> SavedRun:
    """A finished run's data and final model. The run must be finished and of the
    configuration its run.json records; ``overrides`` may change only ``data.*`` settings
    (e.g. another ``data.path`` of the same classes)."""
    run_dir = Path(run_dir)
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    if not (run_dir / "config.toml").is_file():
        raise FileNotFoundError(f"{run_dir / 'config.toml'} does not exist (a finished run dir?)")
    found = identity.inspect_run(run_dir, config.load(run_dir / "config.toml"))
    if found.state is not identity.State.MATCH or not found.finished:
        raise ValueError(f"{run_dir} is not a finished run of its own config.toml: {found.message}")
    _check_overrides(overrides)
    cfg = config.load(run_dir / "config.toml", list(overrides))
    ctx = ctx or cpu_context()
    dataset, _ = load_run_data(cfg, ctx)
    trained = read_result(run_dir / "result.json").dataset.num_classes
    if dataset.num_classes != trained:
        raise ValueError(
            f"{run_dir} was trained on {trained} classes but the data to evaluate "
            f"({cfg.data.name}, {' '.join(overrides) or 'its own settings'}) has "
            f"{dataset.num_classes}: evaluate on data of the same classes"
        )
    model = load_final_model(cfg, dataset, run_dir).to(ctx.device).eval()
    return SavedRun(cfg, dataset, model, getattr(dataset, split), ctx)


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    overrides: Sequence[str] = (),
    ctx: Context | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Evaluate RUN_DIR/final.pt on ``split`` ("val" or "test") of the run's data (see
    ``load_saved_run``); writes ``out`` (default RUN_DIR/eval_<split>.json; an existing file
    only with ``overwrite``) and returns it. Its easy / medium / hard are cross-fitted on
    the split's halves (``mr2.metrics.hard``)."""
    _check_overrides(overrides)
    target = Path(out) if out else Path(run_dir) / f"eval_{split}.json"
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} exists (an earlier evaluation): pass --out another.json, or "
            "--overwrite to replace it"
        )
    if not os.access(target.parent if target.parent.exists() else ".", os.W_OK):
        raise PermissionError(
            f"cannot write {target} ({target.parent} is read-only): pass --out FILE.json "
            "in a folder you can write"
        )
    run = load_saved_run(run_dir, split, overrides, ctx)
    scores = evaluate(
        run.model,
        run.split,
        run.dataset.num_classes,
        batch_size=run.cfg.train.eval_batch_size,
        device=run.ctx.device,
        amp_dtype=run.ctx.amp_dtype,
        halves=True,
    )
    summary = disparity_summary(scores.accuracy, class_counts=scores.support).as_dict()
    summary.update(crossfit_groups(scores.accuracy, scores.halves))  # never ranked on itself
    record = {
        "run": str(run_dir),
        "split": split,
        "data": config.to_dict(run.cfg)["data"],
        "overall": scores.overall,
        "per_class": scores.accuracy.tolist(),
        "support": scores.support.tolist(),
        "summary": summary,
    }
    storage.save_json(record, target)
    return {**record, "path": str(target)}
