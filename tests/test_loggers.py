"""Run loggers (CSV, TensorBoard) and the step progress: what they write is checked against
the run's own JSON-lines log, the record every other tool reads."""

import csv
import importlib.util
import io
import json
import sys
import types

import pytest

from helpers import tiny_config
from mr2.engine import identity, validate
from mr2.engine.loggers import WandbLogger
from mr2.engine.progress import StepProgress
from mr2.engine.train import train


def _cfg(**extra):
    cfg = tiny_config(loss__name="mr2", **extra)
    cfg.train.epochs, cfg.train.log_every = 2, 2
    return cfg


def test_csv_and_tensorboard_loggers_match_the_jsonl_log(tmp_path):
    # tensorboard is a dev dependency (make test installs it): required, never skipped
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _cfg()
    cfg.train.loggers = ["csv", "tensorboard"]
    run = tmp_path / "run"
    result = train(cfg, run, show_progress=False)
    history = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps_per_epoch = result.dataset.sizes["train"] // cfg.train.batch_size
    steps = list(csv.DictReader((run / "steps.csv").open()))
    assert [int(r["step"]) for r in steps] == list(
        range(2, 2 * steps_per_epoch + 1, 2)
    )  # every log_every-th global step
    assert all(float(r["lr"]) >= 0 and float(r["loss"]) > 0 for r in steps)
    epochs = list(csv.DictReader((run / "epochs.csv").open()))
    names = result.dataset.class_names
    for row, record in zip(epochs, history, strict=True):
        assert float(row["epoch/train_loss"]) == pytest.approx(record["train_loss"])
        for k, name in enumerate(names):
            assert float(row[f"val_class/{name}"]) == pytest.approx(record["val_per_class"][k])
            assert float(row[f"margin/{name}"]) == pytest.approx(record["margins"][k])
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    val = [e.value for e in events.Scalars("epoch/val_acc")]
    assert val == pytest.approx([r["val_acc"] for r in history])
    assert len(events.Scalars("step/loss")) == len(steps)


def test_loggers_are_checked_and_do_not_change_the_run(tmp_path):
    cfg = _cfg()
    cfg.train.loggers = ["csv", "tensorbord"]
    with pytest.raises(ValueError, match="unknown logger 'tensorbord'"):
        validate.check_run(cfg)
    cfg.train.loggers = ["wandb"]
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ValueError, match="pip install wandb"):
            validate.check_run(cfg)
    plain, logged = _cfg(), _cfg()
    logged.train.loggers, logged.train.log_every = ["csv"], 7
    assert identity.fingerprint(identity.identity(plain)) == identity.fingerprint(
        identity.identity(logged)
    )


def test_step_progress_off_a_terminal_writes_a_line_every_n_steps():
    stream = io.StringIO()
    progress = StepProgress(7, "epoch 1/2", every=3, stream=stream)
    for step in range(7):
        progress.tick()
        if progress.due(step):
            progress.report(step, loss=0.5, lr=0.1)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [line.split(" step ")[1].split()[0] for line in lines] == ["3/7", "6/7", "7/7"]
    assert all(line.startswith("epoch 1/2 step") and "loss 0.5 lr 0.1" in line for line in lines)
    quiet = StepProgress(7, "x", every=1, enabled=False, stream=io.StringIO())
    assert not any(quiet.due(s) for s in range(7))


def test_wandb_logs_to_the_project_named_by_wandb_project(tmp_path, monkeypatch):
    """A stand-in ``wandb`` module records what the logger asks of W&B."""
    calls = []
    run = types.SimpleNamespace(log=lambda *a, **k: None, finish=lambda: None)
    fake = types.SimpleNamespace(init=lambda **kwargs: calls.append(kwargs) or run)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    WandbLogger(tmp_path / "seed0", {}, False)
    monkeypatch.setenv("WANDB_PROJECT", "fairness-study")
    WandbLogger(tmp_path / "seed1", {}, False)
    assert [c["project"] for c in calls] == ["mr2", "fairness-study"]
    assert [c["name"] for c in calls] == ["seed0", "seed1"]
