"""``mr2 diagnose``: the spread diagnostics of a finished run's final model (its features
on the validation or test split, computed here) or of a feature file (features, labels and
optionally predictions or logits in an .npz)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mr2.engine.saved import load_saved_run
from mr2.records.storage import save_json
from mr2.report.diagnostics import Diagnosis, diagnose_features, diagnose_plot


@dataclass(frozen=True)
class Diagnosed:
    result: Diagnosis
    json: Path
    plot: Path | None  # None without predictions (a feature file without them)


def diagnose_run(run_dir: str | Path, split: str = "test") -> Diagnosis:
    """Load a run's config and final model, compute features on ``split`` (val or test)."""

    run = load_saved_run(run_dir, split)
    model, dataset, data, cfg = run.model, run.dataset, run.split, run.cfg
    with torch.no_grad():
        outs = [model(x) for x in data.x.split(cfg.train.eval_batch_size)]
    logits = torch.cat([o[0] for o in outs])
    features = torch.cat([o[1] for o in outs])
    out = diagnose_features(features, data.y, logits.argmax(1), dataset.num_classes)
    return replace(out, class_names=dataset.class_names, split=split)


def run_diagnose(
    run: str | None, features: str | None, split: str = "test", out: str | None = None
) -> Diagnosed:
    """``mr2 diagnose``: from a run directory or a feature file; writes diagnose.json and,
    when accuracies are known, spread_vs_accuracy.png."""
    if (run is None) == (features is None):
        raise ValueError("give either a run directory or --features FILE.npz")
    if run is not None:
        result = diagnose_run(run, split)
        folder = Path(out or Path(run) / "diagnose")
    else:
        path = Path(str(features))
        if not path.is_file():
            raise FileNotFoundError(f"feature file {path} does not exist")
        with np.load(path, allow_pickle=False) as d:
            if not {"features", "labels"} <= set(d.files):
                raise ValueError(f"{path} needs arrays 'features' and 'labels', has {d.files}")
            preds = (
                d["preds"] if "preds" in d.files else d["logits"] if "logits" in d.files else None
            )
            result = diagnose_features(d["features"], d["labels"], preds)
        folder = Path(out or path.parent)
    folder.mkdir(parents=True, exist_ok=True)
    save_json(result.to_dict(), folder / "diagnose.json")
    png = diagnose_plot(result, folder / "spread_vs_accuracy.png") if result.accuracy else None
    return Diagnosed(result, folder / "diagnose.json", png)
