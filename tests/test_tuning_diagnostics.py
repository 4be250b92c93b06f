"""Tuning on validation, diagnostics in the report, and `mr2 diagnose`."""

import json

import numpy as np
import pytest
import torch

from helpers import tiny_config
from mr2 import cli, models
from mr2.engine.compare import grid_points, run_compare
from mr2.engine.evaluate import evaluate, evaluate_with_features
from mr2.functional import class_statistics
from mr2.records.selection import read_selection
from mr2.report import build
from mr2.report.diagnostics import correlations, diagnose_features


def test_grid_points_order():
    assert grid_points({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    with pytest.raises(ValueError, match="non-empty list"):
        grid_points({"a": []})


def test_grid_is_selected_on_validation_and_reported(tmp_path):
    cfg = tiny_config()
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0, 1]
    cfg.compare.grid = {"mr2": {"lambda_rep": [0.0, 1.0], "c_bar": [0.5, 2.0]}}
    cfg.compare.select_metric = "worst_class"
    out = tmp_path / "cmp"
    run_compare(cfg, out, show_progress=False, log=lambda *_: None)
    selection = json.loads((out / "mr2" / "selection.json").read_text())
    assert len(selection["grid"]) == 4 and selection["tune_seeds"] == [0]
    typed = read_selection(out / "mr2")  # the record the report and the comparison read
    assert typed.to_dict() == selection and typed.grid[0].label == selection["grid"][0]["label"]
    scores = {}  # recompute every grid point's validation score from its own run
    for d in (out / "mr2" / "grid").iterdir():
        result = json.loads((d / "seed0" / "result.json").read_text())
        scores[d.name] = result["val"]["worst_class"]
        assert result["val"]["worst_class"] == min(result["val"]["per_class"])
    best = max(scores.values())
    chosen = next(r for r in selection["grid"] if r["point"] == selection["selected"])
    assert scores[chosen["label"]] == best
    for seed in (0, 1):
        final = json.loads((out / "mr2" / f"seed{seed}" / "result.json").read_text())
        assert final["config"]["loss"]["options"] == selection["options"]
    # the selected point's tuning run (seed 0) is the test run of seed 0: copied, not retrained
    tuned = out / "mr2" / "grid" / chosen["label"] / "seed0" / "result.json"
    assert (out / "mr2" / "seed0" / "result.json").read_bytes() == tuned.read_bytes()
    built = build([out], out)
    assert len(built.summary.runs) == 4  # grid runs are not results
    text = (out / "report.md").read_text()
    assert "Settings chosen on validation" in text and chosen["label"] in text
    for name in ("spread_vs_accuracy.png", "margins_over_epochs.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "mistaken for" in text and "Spearman" in text


def test_feature_statistics_match_class_statistics():
    """From the evaluation's own forward passes: the same scores as ``evaluate``."""
    torch.manual_seed(0)
    from mr2.data import Split

    model = models.create("mlp", (6,), 3, width=16)
    split = Split(torch.randn(50, 6), torch.arange(50) % 3)
    cpu = torch.device("cpu")
    scores, got = evaluate_with_features(model, split, 3, batch_size=7, device=cpu)
    alone = evaluate(model, split, 3, batch_size=7, device=cpu, halves=True)
    assert torch.equal(scores.confusion, alone.confusion)
    assert torch.equal(scores.halves, alone.halves)
    with torch.no_grad():
        f = model(split.x)[1].double()
    _, norm_sq, spread = class_statistics(f, split.y, 3)
    np.testing.assert_allclose(got["spread"], spread.numpy(), rtol=1e-6)
    np.testing.assert_allclose(got["norm_sq"], norm_sq.numpy(), rtol=1e-6)


def test_correlations_hand_values():
    # x = (1, 2, 3), y = (1, 3, 2): deviations (-1, 0, 1), (-1, 1, 0): r = 1 / 2 (ranks alike)
    c = correlations([1, 2, 3], [1, 3, 2])
    assert c.pearson == pytest.approx(0.5) and c.spearman == pytest.approx(0.5)
    # a tie: ranks of x = (1, 2.5, 2.5, 4) against (1, 2, 3, 4): rho = 4.5 / sqrt(4.5 * 5)
    c = correlations([1, 2, 2, 3], [1, 2, 3, 4])
    assert c.spearman == pytest.approx(3 / np.sqrt(10))
    assert np.isnan(correlations([1, 2], [3, 4]).pearson)
    assert correlations([1, np.nan, 2, 3], [1, 5, 3, 2]).n == 3  # NaN classes left out


def test_diagnose_feature_file_and_run(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    feats = rng.normal(size=(60, 4)) * (1 + labels[:, None])  # class 2 widest
    preds = np.where(rng.random(60) < 1 - 0.3 * labels / 2, labels, (labels + 1) % 3)
    np.savez(tmp_path / "f.npz", features=feats, labels=labels, preds=preds)
    assert cli.main(["diagnose", "--features", str(tmp_path / "f.npz")]) == 0
    saved = json.loads((tmp_path / "diagnose.json").read_text())
    direct = diagnose_features(feats, labels, preds)
    assert saved == direct.to_dict() and saved["spread"] == pytest.approx(direct.spread)
    assert saved["spread"][2] > saved["spread"][0]
    assert (tmp_path / "spread_vs_accuracy.png").is_file()
    cfg = tiny_config()
    from mr2.engine.train import train

    train(cfg, tmp_path / "run", show_progress=False)
    assert cli.main(["diagnose", str(tmp_path / "run"), "--split", "val"]) == 0
    out = json.loads((tmp_path / "run" / "diagnose" / "diagnose.json").read_text())
    assert out["split"] == "val" and len(out["accuracy"]) == 5
    assert cli.main(["diagnose", str(tmp_path / "nothing")]) == 2
    assert cli.main(["diagnose"]) == 2


def test_an_undefined_selection_metric_is_refused_not_chosen_on_nan(tmp_path):
    """Two classes have no hard third (K = 2 splits as 1 / 1 / 0): selecting on it would
    pick a grid point on [nan, nan]."""
    cfg = tiny_config()
    cfg.data.options = {**cfg.data.options, "num_classes": 2}
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0]
    cfg.compare.grid = {"mr2": {"lambda_rep": [0.0, 0.1]}}
    cfg.compare.select_metric = "hard"
    with pytest.raises(ValueError, match=r"undefined for 2 classes.*mean_class"):
        run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    assert not list((tmp_path / "C").rglob("result.json"))  # refused before any run trained
    # and should NaN scores reach the selection anyway, no point is chosen on them
    from mr2.engine.compare import tuning

    monkey = pytest.MonkeyPatch()
    monkey.setattr(tuning, "check_hard_third", lambda cfg: None)
    try:
        with pytest.raises(ValueError, match=r"undefined \(NaN\) at every grid point"):
            run_compare(cfg, tmp_path / "D", show_progress=False, log=lambda *_: None)
    finally:
        monkey.undo()


def test_an_empty_feature_file_is_a_clear_error(tmp_path):
    from mr2.engine.diagnose import run_diagnose

    path = tmp_path / "f.npz"
    np.savez(path, features=np.zeros((0, 4)), labels=np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="holds no samples"):
        run_diagnose(None, str(path))
