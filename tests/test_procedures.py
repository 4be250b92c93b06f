"""Loop-level baselines: each mechanism checked against an independent computation."""

import json
import math

import pytest
import torch

from helpers import tiny_config
from mr2 import data, models
from mr2.engine import procedures
from mr2.engine.compare import run_config
from mr2.engine.run import create_model, load_data, load_final_model
from mr2.engine.train import train

SERVICES = procedures.Services(create_model, load_final_model, train)  # what the engine passes


def base():
    return tiny_config()


def test_jtt_second_stage_upweights_exactly_the_first_stage_errors(tmp_path):
    cfg = base()
    cfg.compare.options = {"jtt": {"first_epochs": 1, "upweight": 4.0}}
    result = train(run_config(cfg, "jtt", 0), tmp_path / "jtt", show_progress=False)
    assert result.method == "jtt"
    stage1 = json.loads((tmp_path / "jtt" / "stage1" / "result.json").read_text())
    assert len(stage1["history"]) == 1 and stage1["method"] == "ce"
    # independent recomputation of stage 1's training errors from its saved model
    dataset = load_data(cfg)
    model = models.create("mlp", dataset.input_shape, 5, width=32)
    model.load_state_dict(torch.load(tmp_path / "jtt" / "stage1" / "final.pt")["model"])
    with torch.no_grad():
        errors = model(dataset.train.x)[0].argmax(1) != dataset.train.y
    saved = json.loads((tmp_path / "jtt" / "jtt_errors.json").read_text())
    assert saved["error_indices"] == torch.nonzero(errors).flatten().tolist()
    assert 0 < len(saved["error_indices"]) < len(dataset.train)
    proc = procedures.create(
        "jtt",
        run_config(cfg, "jtt", 0),
        dataset,
        torch.device("cpu"),
        tmp_path / "jtt",
        services=SERVICES,
        first_epochs=1,
        upweight=4.0,
    )
    proc.prepare()  # stage 1 is done: reused, not retrained
    idx = torch.arange(len(dataset.train))
    w = proc.batch_weights(0, idx, None, dataset.train.y, torch.zeros(len(idx), 5))
    assert torch.equal(w, torch.where(errors, 4.0, 1.0))


def test_drw_weights_switch_on_at_the_start_epoch():
    y = torch.cat([torch.zeros(50), torch.ones(10)]).long()
    split = data.Split(torch.randn(60, 3), y)
    ds = data.make_dataset("imb", split, split, 2, val_fraction=0.0, seed=0)
    cfg = base()
    cfg.train.epochs = 10
    proc = procedures.create("drw", cfg, ds, torch.device("cpu"), None, start_epoch=0.5, beta=0.99)
    proc.prepare()
    assert proc.batch_weights(4, None, None, y[:4], None) is None
    w = [(1 - 0.99) / (1 - 0.99**50), (1 - 0.99) / (1 - 0.99**10)]
    expect = torch.tensor(w) * 2 / sum(w)
    torch.testing.assert_close(
        proc.batch_weights(5, None, None, torch.tensor([0, 1]), None), expect
    )
    balanced = procedures.effective_number_weights(torch.tensor([20, 20, 20]), 0.999)
    torch.testing.assert_close(balanced, torch.ones(3))


def test_lff_relative_difficulty_and_biased_model_training():
    cfg = base()
    ds = load_data(cfg)
    proc = procedures.create("lff", cfg, ds, torch.device("cpu"), None, SERVICES, ema=0.5)
    proc.prepare()
    idx = torch.tensor([0, 1])
    y = ds.train.y[idx]
    w = proc.relative_difficulty(idx, y, torch.tensor([2.0, 1.0]), torch.tensor([1.0, 3.0]))
    # EMAs from 0 with decay 0.5: halves; each normalised by its class maximum
    ema_b, ema_d = torch.tensor([1.0, 0.5]), torch.tensor([0.5, 1.5])
    same = y[0] == y[1]
    max_b = ema_b.max() if same else ema_b
    max_d = ema_d.max() if same else ema_d
    lb, ld = ema_b / max_b, ema_d / max_d
    torch.testing.assert_close(w, lb / (lb + ld + 1e-8))
    proc.bind(proc.opt)  # the biased model follows its own schedule here
    before = [p.clone() for p in proc.biased.parameters()]
    batch = torch.arange(32)
    weights = proc.batch_weights(0, batch, ds.train.x[batch], ds.train.y[batch], torch.zeros(32, 5))
    assert weights.shape == (32,) and bool(((weights >= 0) & (weights <= 1)).all())
    assert any(not torch.equal(a, b) for a, b in zip(before, proc.biased.parameters(), strict=True))


@pytest.mark.parametrize("method", ["lff", "drw"])
def test_procedures_run_by_name_and_resume(method, tmp_path):
    cfg = base()
    first = train(run_config(cfg, method, 0), tmp_path / "a", show_progress=False)
    assert first.method == method and math.isfinite(first.test.overall)
    ckpt = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert "procedure" in ckpt


def test_unknown_procedure_option(tmp_path):
    cfg = base()
    cfg.compare.options = {"jtt": {"upweigth": 3}}
    with pytest.raises(ValueError, match=r"does not take it \(did you mean .upweight"):
        train(run_config(cfg, "jtt", 0), tmp_path / "x", show_progress=False)


def test_lff_resume_is_exact(tmp_path, monkeypatch):
    """Interrupted after epoch 1 and resumed, LfF ends bitwise as the uninterrupted run (the
    biased model keeps following the main schedule after the optimiser state is restored)."""
    from mr2.engine import fit as train_module  # the loop's module

    cfg = run_config(base(), "lff", 0)
    cfg.train.epochs = 3
    whole = train(cfg, tmp_path / "whole", show_progress=False)
    real_epoch = train_module._epoch

    def interrupted(loop, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt  # after epoch 0's checkpoint was written
        return real_epoch(loop, epoch, *args)

    monkeypatch.setattr(train_module, "_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", show_progress=False)
    monkeypatch.setattr(train_module, "_epoch", real_epoch)
    resumed = train(cfg, tmp_path / "cut", show_progress=False)
    assert [h.train_loss for h in resumed.history] == [h.train_loss for h in whole.history]
    assert resumed.test.per_class == whole.test.per_class
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["procedure"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["procedure"]
    for key, value in a["biased"].items():
        assert torch.equal(value, b["biased"][key]), key
