"""The whole configuration is checked before any data is loaded or directory written:
names, options (against the factory that receives them), types and ranges."""

import pytest

from helpers import tiny_config
from mr2 import cli
from mr2.engine import config, validate
from mr2.engine.train import train


def problems(**sections):
    return validate.problems(tiny_config(**sections))


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("optim__lr", float("inf"), "optim.lr must be finite and > 0"),
        ("optim__lr", 0.0, "optim.lr must be finite and > 0"),
        ("optim__momentum", 5.0, r"optim.momentum must lie in \[0, 1\), got 5.0"),
        ("optim__betas", [0.9, 1.5], "optim.betas must be two values"),
        ("optim__weight_decay", -1.0, "optim.weight_decay must be finite and >= 0"),
        ("optim__warmup_epochs", float("nan"), "optim.warmup_epochs must be finite"),
        ("optim__warmup_steps", -3, "optim.warmup_steps must be >= 0"),
        ("optim__grad_clip", float("inf"), "optim.grad_clip must be finite"),
        ("train__eval_batch_size", 0, "train.eval_batch_size must be >= 1"),
        ("train__threads", -1, "train.threads must be >= 0"),
        ("data__train_subset", -5, "data.train_subset must be >= 0"),
        ("data__name", "fashoin_mnist", "did you mean 'fashion_mnist'"),
        ("model__name", "mpl", "did you mean 'mlp'"),
        ("model__options", {"widht": 8}, r"model.options.widht: .*did you mean 'width'"),
        ("loss__name", "focla", "did you mean 'focal'"),
        ("train__procedure", "jt", "unknown procedure 'jt'"),
        ("loss__preset", "official", "loss 'ce' has no preset 'official'"),
    ],
)
def test_bad_values_are_named(section, value, message):
    found = problems(**{section: value})
    assert any(__import__("re").search(message, p) for p in found), found


def test_wrongly_typed_and_out_of_range_loss_options():
    found = problems(loss__name="mr2", loss__options={"lambda_rep": "abc", "c_bar": -1.0})
    assert "loss.options.lambda_rep: expected float, got 'abc'" in found
    found = problems(loss__name="mr2", loss__options={"c_bar": -1.0})
    assert any("c_bar must be > 0" in p for p in found), found
    found = problems(loss__name="mr2_logit", loss__options={"lambda_rep": 0.3})
    assert any("loss.options.lambda_rep: loss 'mr2_logit' does not take it" in p for p in found)


def test_unknown_key_suggests_the_right_section():
    with pytest.raises(
        ValueError, match=r"unknown config key train.lr \(did you mean optim.lr\?\)"
    ):
        config.load(None, ["train.lr=0.1"])
    with pytest.raises(ValueError, match=r"train.epoch \(did you mean 'train.epochs'\?\)"):
        config.load(None, ["train.epoch=3"])
    with pytest.raises(ValueError, match=r"section 'trian' \(did you mean 'train'\?\)"):
        config.load(None, ["trian.epochs=3"])


def test_all_problems_are_reported_together_before_anything_is_written(tmp_path, capsys):
    argv = ["train", "--out", str(tmp_path / "R"), "--set", "optim.momentum=5"]
    argv += ["--set", "train.eval_batch_size=0", "--set", "loss.name=focla"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err and "optim.momentum" in err and "eval_batch_size" in err
    assert not (tmp_path / "R").exists()


def test_validation_runs_before_data_loading(tmp_path, monkeypatch):
    from mr2 import data

    loaded = []
    monkeypatch.setattr(data, "load", lambda *a, **k: loaded.append(a))
    cfg = tiny_config(loss__name="mr2", loss__options={"lamda_rep": 0.1})
    with pytest.raises(ValueError, match="did you mean 'lambda_rep'"):
        train(cfg, tmp_path / "R", show_progress=False)
    assert loaded == [] and not (tmp_path / "R").exists()


def test_loss_preset_from_a_config_uses_the_feature_width(tmp_path):
    cfg = tiny_config(loss__name="mr2", loss__preset="official")
    result = train(cfg, tmp_path / "R", show_progress=False)
    options = result.identity
    assert options["loss.preset"] == "official"
    from mr2 import models
    from mr2.engine.run import create_loss

    model = models.create("mlp", (8,), 5, width=32)
    loss_fn = create_loss(cfg, 5, model, world=1)
    assert loss_fn.rep_temperature == 10.0 * 32 and loss_fn.norm_p == 5.0
    assert loss_fn.lambda_rep == pytest.approx(0.1 * 32 / 10 / 5)
    over = tiny_config(loss__name="mr2", loss__preset="official", loss__options={"norm_p": 2.0})
    assert create_loss(over, 5, model, world=1).norm_p == 2.0  # options override the preset


def test_shipped_clip_recipes_use_the_official_preset():
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "configs").glob("clip_*.toml")):
        cfg = config.load(path)
        assert cfg.compare.options["mr2"].get("preset") == "official", path
        assert "lambda_rep" not in cfg.compare.options["mr2"], path


def test_epoch_line_formats_every_number():
    from mr2.engine.fit import epoch_line
    from mr2.records.result import EpochRecord

    record = {"epoch": 0, "train_loss": 1 / 3, "train_acc": 0.5, "lr": 0.012345, "time_s": 2.0}
    line = epoch_line(EpochRecord(**record, val_acc=None, val_mean_class=float("nan")), 3)
    assert line == "epoch 1/3 loss 0.3333 train acc 0.5000 lr 0.0123 (2.0 s)"
    line = epoch_line(EpochRecord(**record, val_acc=2 / 3, val_mean_class=0.6), 3)
    assert "val acc 0.6667 val mean-class 0.6000" in line


def test_engine_gathers_features_under_ddp_unless_told_otherwise():
    from mr2 import models
    from mr2.engine.run import create_loss

    model = models.create("mlp", (8,), 5, width=32)
    assert create_loss(tiny_config(loss__name="mr2"), 5, model, world=2).gather_features
    assert not create_loss(tiny_config(loss__name="mr2"), 5, model, world=1).gather_features
    told = tiny_config(loss__name="mr2", loss__options={"gather_features": False})
    assert not create_loss(told, 5, model, world=2).gather_features
    assert create_loss(tiny_config(), 5, model, world=2).__class__.__name__ == "CrossEntropy"


def test_a_backbone_whose_package_is_missing_is_named_before_anything_loads(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "timm" else real(n, *a)
    )
    problems = validate.problems(tiny_config(model__name="mae"))
    assert problems == ["model.name = 'mae' needs timm: pip install 'mr2[vision]'"], problems
    assert not any("timm" in p for p in validate.problems(tiny_config(model__name="clip")))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.procedure_options={upweight=3}"], "apply to no run of a comparison"),
        (['train.procedure="jtt"'], "compare the procedure as a method"),
        (["compare.tune_seeds=[7]"], "tune_seeds is set but no method has a grid"),
        (
            ["compare.tune_seeds=[0, 0]", "compare.grid={mr2={lambda_rep=[0.0, 0.1]}}"],
            "tune_seeds has duplicates",
        ),
        (["compare.options={mr2={process_group=3}}"], "process_group: a torch.distributed group"),
    ],
)
def test_comparison_settings_that_would_be_dropped_are_refused(overrides, message, tmp_path):
    from mr2.engine.compare import check_compare

    cfg = config.load(None, ['compare.methods=["ce", "mr2"]', *overrides])
    with pytest.raises(ValueError, match=message):
        check_compare(cfg)
