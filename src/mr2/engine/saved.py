"""Evaluating a finished run's saved model (``mr2 evaluate RUN_DIR``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mr2 import io
from mr2.engine import config, identity
from mr2.engine.context import Context, cpu_context
from mr2.engine.loop import Loop, load_final_model, load_run_data
from mr2.metrics import disparity_summary


def evaluate_run(
    run_dir: str | Path, split: str = "test", overrides: list[str] = (), ctx: Context | None = None
) -> dict[str, Any]:
    """Evaluate RUN_DIR/final.pt on ``split`` ("val" or "test") of the run's data (``overrides``:
    ``data.key=value`` settings, e.g. another ``data.path`` of the same classes); writes
    RUN_DIR/eval_<split>.json and returns it. The run must be finished and of the
    configuration its run.json records."""
    run_dir = Path(run_dir)
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    if not (run_dir / "config.toml").is_file():
        raise FileNotFoundError(f"{run_dir / 'config.toml'} does not exist (a finished run dir?)")
    cfg = config.load(run_dir / "config.toml")
    found = identity.inspect_run(run_dir, cfg)
    if found.state is not identity.State.MATCH or not found.finished:
        raise ValueError(f"{run_dir} is not a finished run of its own config.toml: {found.message}")
    bad = [o for o in overrides if not o.startswith("data.")]
    if bad:
        raise ValueError(f"only data.* settings can change for an evaluation, got {bad}")
    evaluated = config.load(run_dir / "config.toml", list(overrides))
    ctx = ctx or cpu_context()
    dataset, _ = load_run_data(evaluated, ctx)
    model = load_final_model(evaluated, dataset, run_dir).to(ctx.device)
    loop = Loop(evaluated, ctx, dataset, model, model, None, None, None, None)
    scores = loop.evaluate(getattr(dataset, split))
    summary = disparity_summary(scores.accuracy, class_counts=scores.support).as_dict()
    out = {
        "run": str(run_dir),
        "split": split,
        "data": config.to_dict(evaluated)["data"],
        "overall": scores.overall,
        "per_class": scores.accuracy.tolist(),
        "support": scores.support.tolist(),
        "summary": summary,
    }
    io.save_json(out, run_dir / f"eval_{split}.json")
    return out
