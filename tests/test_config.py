"""Config: TOML file, --set overrides, errors that name the key, resolved-config round trip."""

import pytest
import torch

from mr2 import backbones, cli, models
from mr2.engine import config
from mr2.engine.compare import check_compare, run_config
from mr2.engine.run import create_loss


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[loss]\nname = "mr2"\noptions = {lambda_rep = 0.2}\n[train]\nepochs = 4\n'
        "[compare.options.mr2]\nc_bar = 2.0\n"
    )
    cfg = config.load(
        path, ["train.epochs=7", "loss.options.c_bar=1.5", "optim.lr=1", "data.name=digits"]
    )
    assert cfg.train.epochs == 7 and cfg.optim.lr == 1.0 and cfg.data.name == "digits"
    assert cfg.loss.options == {"lambda_rep": 0.2, "c_bar": 1.5}
    assert cfg.compare.options == {"mr2": {"c_bar": 2.0}}
    again = tmp_path / "resolved.toml"
    again.write_text(config.to_toml(cfg))
    assert config.load(again) == cfg


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.epoch=3", "unknown config key train.epoch"),
        ("trian.epochs=3", "unknown config section 'trian'"),
        ("train.epochs=x", "train.epochs: expected int"),
        ("train.epochs=2.5", "train.epochs: expected int"),
        ("train.amp=1", "train.amp: expected bool"),
        ("epochs=3", "section.key=value"),
        ("train.seed.x=1", "not a table"),
    ],
)
def test_errors_name_the_key(override, match):
    with pytest.raises(ValueError, match=match):
        config.load(None, [override])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("optim.name=adam", r"optim.name: unknown optimiser 'adam' \(did you mean 'adamw'"),
        ("optim.schedule=cosin", r"optim.schedule: unknown schedule 'cosin' \(did you mean"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("train.amp_dtype=fp8", "train.amp_dtype must be auto|float16|bfloat16"),
    ],
)
def test_bad_values_are_named_before_a_run(override, match):
    from mr2.engine import validate

    with pytest.raises(ValueError, match=match):
        validate.check_run(config.load(None, [override]))


@pytest.mark.parametrize(
    ("amp", "name", "kind", "expected"),
    [
        (False, "bfloat16", "cuda", None),
        (True, "auto", "cuda", torch.float16),
        (True, "auto", "cpu", torch.bfloat16),
        (True, "bfloat16", "cuda", torch.bfloat16),
        (True, "float16", "cpu", torch.float16),
    ],
)
def test_amp_dtype(amp, name, kind, expected):
    from mr2.engine.context import amp_dtype

    cfg = config.load(None, [f"train.amp={str(amp).lower()}", f"train.amp_dtype={name}"])
    assert amp_dtype(cfg, kind) == expected


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        config.load("/nonexistent.toml")


def test_shipped_configs_data_files():
    """The data file each shipped config names exists and passes its dataset's own check (the
    CIFAR-10 file's sha256); they are ../shared's files: skipped with the reason on a user's
    machine, required under .ci/run."""
    from pathlib import Path

    from mr2.engine.validate import problems
    from required_data import SHARED, shared

    root = Path(__file__).parents[1]
    files = sorted((root / "configs").glob("*.toml")) + sorted(root.glob("benchmarks/**/*.toml"))
    named = [(f, config.load(f)) for f in files]
    named = [(f, cfg) for f, cfg in named if cfg.data.path]
    assert len(named) >= 6
    for f, cfg in named:
        data_file = (root / cfg.data.path).resolve()
        assert data_file.is_relative_to(SHARED.resolve()), (f, cfg.data.path)
        cfg.data.path = str(shared(*data_file.relative_to(SHARED.resolve()).parts))
        assert problems(cfg) == [], f


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).parents[1]
    files = sorted((root / "configs").glob("*.toml")) + sorted(root.glob("benchmarks/**/*.toml"))
    assert len(files) >= 20
    for f in files:
        cfg = config.load(f)
        assert cfg.train.epochs >= 1, f
        cfg.data.path = ""  # the data files: test_shipped_configs_data_files
        check_compare(cfg)  # every name, option and grid point of every run is a real one
        if cfg.model.name in backbones.available():
            assert set(cfg.model.options) <= backbones.options(cfg.model.name), f
        else:
            models.create(cfg.model.name, (3, 32, 32), 10, **cfg.model.options)
    c100 = config.load(root / "configs" / "cifar100_resnet32.toml")
    assert c100.data.augment and c100.data.autoaugment  # as the authors' script
    # the paper's split (no validation carved out) and its ResNet-32 (option-A shortcuts)
    assert c100.data.val_fraction == 0 and c100.model.options == {"shortcut": "A"}
    for method in ("mr2", "mr2_rep"):  # never the literal form the studies found harmful
        assert run_config(c100, method, 0).loss.preset == "official"
    clip = config.load(root / "configs" / "clip_vitb16_finetune_pets.toml")
    assert (clip.optim.name, clip.optim.lr, clip.optim.weight_decay) == ("adamw", 3e-5, 0.1)
    assert (clip.train.batch_size, clip.train.epochs, clip.optim.warmup_steps) == (512, 10, 500)
    assert clip.optim.grad_clip == 1.0 and clip.optim.schedule == "cosine"
    run = run_config(clip, "mr2", 0)
    head = torch.nn.Module()
    head.head = torch.nn.Linear(512, 37)  # CLIP ViT-B/16: D = 512; Pets: K = 37
    loss_fn = create_loss(run, 37, head, world=1)
    assert loss_fn.lambda_rep == pytest.approx(0.1 * 512 / 10 / 37)
    assert (loss_fn.rep_temperature, loss_fn.norm_p, loss_fn.rep_reduction) == (
        5120.0,
        5.0,
        "class",
    )
    paper = config.load(Path(__file__).parents[1] / "configs" / "cifar100_resnet32.toml")
    assert (paper.train.epochs, paper.optim.lr, paper.optim.warmup_epochs) == (300, 0.1, 20.0)
    assert (paper.optim.weight_decay, paper.train.batch_size) == (5e-4, 128)


def test_a_folder_given_as_config_is_named_as_a_folder(tmp_path, capsys):
    with pytest.raises(IsADirectoryError, match="is a folder: pass a TOML file"):
        config.load(tmp_path)
    assert cli.main(["train", "--config", str(tmp_path), "--out", str(tmp_path / "R")]) == 2
    assert "is a folder" in capsys.readouterr().err
