"""The training loop without a per-step host sync: losses without their per-batch checks
(labels checked once, before training), non-finite losses found from an on-device tally and
named by epoch and batch, and ``train.compile`` modes."""

import pytest
import torch

from helpers import tiny_config
from mr2.data.base import Dataset, Split
from mr2.engine import config, config_rules, fit, run
from mr2.engine.train import train
from mr2.engine.wise import pre_trained, run_wise


def small(**sections):
    cfg = tiny_config(**{"loss__name": "mr2", **sections})
    cfg.optim.lr, cfg.optim.warmup_epochs = 0.05, 1.0
    return cfg


def test_the_engine_runs_losses_without_their_per_batch_checks(tmp_path):
    cfg = small()
    prepared = run.prepare(cfg, tmp_path, resume=False)
    assert prepared.loss_fn.validate is False and prepared.train_loss is prepared.loss_fn
    cfg.loss.options = {"validate": True}  # a user's explicit choice stands
    assert run.prepare(cfg, tmp_path, resume=False).loss_fn.validate is True


@pytest.mark.parametrize(
    ("labels", "match"),
    [([0, 1, 3], r"test labels must lie in \[0, 3\), got 3"), ([0, -1, 2], "must be >= 0")],
)
def test_labels_of_every_split_are_checked_before_training(labels, match):
    ok = Split(torch.zeros(3, 2), torch.tensor([0, 1, 2]))
    data = Dataset("d", ok, ok, Split(torch.zeros(3, 2), torch.tensor(labels)), num_classes=3)
    with pytest.raises(ValueError, match=match):
        run.check_labels(data)
    run.check_labels(Dataset("d", ok, ok, ok, num_classes=3))


def _host_reads(monkeypatch) -> list[str]:
    """Every read of a tensor's value by the host, recorded (and still performed)."""
    reads: list[str] = []
    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)

        def recording(self, *a, _name=name, _original=original, **k):
            reads.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, recording)
    return reads


@pytest.mark.parametrize("loss", ["mr2", "ce", "group_dro"])
def test_an_epoch_reads_back_a_fixed_number_of_values_whatever_its_length(
    loss, tmp_path, monkeypatch
):
    """No read per step: an epoch of 16 steps reads back exactly what one of 4 does (the
    end-of-epoch tally), with logging every 1000 steps."""
    counts = []
    for n_train in (200, 800):
        cfg = small(loss__name=loss, train__batch_size=50, train__log_every=1000)
        cfg.data.options = {**cfg.data.options, "n_train": n_train}
        prepared = run.prepare(cfg, tmp_path / str(n_train), resume=False)
        reads = _host_reads(monkeypatch)
        fit.train_epoch(prepared, 0, show_progress=False)
        monkeypatch.undo()
        counts.append(len(reads))
    assert counts[0] == counts[1], counts


def test_a_non_finite_loss_names_its_epoch_and_batch(tmp_path, monkeypatch):
    original, calls = fit._step, []

    def poisoned(r, epoch, idx, x, y, lr):
        loss, logits = original(r, epoch, idx, x, y, lr)
        calls.append(epoch)
        if epoch == 1 and calls.count(1) == 3:
            loss = loss * float("nan")
        return loss, logits

    monkeypatch.setattr(fit, "_step", poisoned)
    cfg = small(train__epochs=3)
    steps = run.prepare(cfg, tmp_path / "p", resume=False).steps_per_epoch
    with pytest.raises(FloatingPointError, match=rf"NaN or Inf at epoch 2, batch 3 of {steps}"):
        train(cfg, tmp_path / "r", show_progress=False)


def test_compile_modes_are_checked():
    assert any("train.compile must be true, false or one of" in p
               for p in config_rules.range_problems(small(train__compile="fast")))  # fmt: skip
    assert not config_rules.range_problems(small(train__compile="reduce-overhead"))
    with pytest.raises(ValueError, match=r"train\.compile: expected bool or str, got 3"):
        config.from_dict({"train": {"compile": 3}})


@pytest.mark.slow
def test_reduce_overhead_compiles_model_and_loss_and_trains_like_eager(tmp_path):
    eager = train(small(train__epochs=1), tmp_path / "e", show_progress=False)
    cfg = small(train__epochs=1, train__compile="reduce-overhead")
    prepared = run.prepare(cfg, tmp_path / "p", resume=False)
    assert prepared.train_loss._orig_mod is prepared.loss_fn  # the loss compiled too
    compiled = train(cfg, tmp_path / "c", show_progress=False)
    assert compiled.test.per_class == pytest.approx(eager.test.per_class, abs=0.03)
    for a, b in zip(compiled.history, eager.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)


def test_wise_ft_on_a_run_trained_from_scratch_warns(tmp_path):
    cfg = small(train__epochs=1)
    train(cfg, tmp_path / "r", show_progress=False)
    with pytest.warns(UserWarning, match="from scratch: WiSE-FT interpolates"):
        run_wise(tmp_path / "r", [0.0, 1.0])
    assert not pre_trained(cfg)
    assert pre_trained(small(model__name="clip"))
    timm = small(model__name="timm:test_resnet")
    assert not pre_trained(timm)
    timm.model.options = {"pretrained": True}
    assert pre_trained(timm)


def test_a_run_sets_its_process_up_once(tmp_path, monkeypatch):
    """``setup`` (threads, device, the torchrun group) runs once per trained or initially
    evaluated run: the context is handed on, not rebuilt."""
    import importlib

    from mr2.engine import context

    train_module = importlib.import_module("mr2.engine.train")  # the package exports train()

    calls = []

    def counted(cfg):
        calls.append(cfg.train.seed)
        return context.setup(cfg)

    monkeypatch.setattr(train_module, "setup", counted)
    monkeypatch.setattr(run, "setup", counted)
    train(small(), tmp_path / "r", show_progress=False)
    assert calls == [0]
    train_module.evaluate_initial(small(), tmp_path / "i")
    assert calls == [0, 0]
