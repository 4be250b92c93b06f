"""Any model in ``mr2 train`` / ``mr2 compare``: a timm or torchvision classifier by name,
and the user's own models and datasets registered from their code (``--import``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny_config
from mr2 import cli, data, models
from mr2.engine import config, validate
from mr2.models import external

HERE = Path(__file__).resolve().parent


def digits_config(model: str, **options):
    cfg = tiny_config(model__name=model, loss__name="mr2")
    cfg.model.options = options
    cfg.data.name, cfg.data.options = "digits", {}
    cfg.data.train_subset, cfg.train.epochs, cfg.train.batch_size = 600, 3, 50
    cfg.optim.lr, cfg.optim.warmup_epochs = 0.05, 0.0
    cfg.compare.methods, cfg.compare.seeds, cfg.compare.grid = ["ce", "mr2"], [0], {}
    return cfg


@pytest.mark.parametrize(
    ("model", "options", "library_head"),
    [
        ("timm:test_resnet", {}, "get_classifier()"),
        ("torchvision:resnet18", {}, "fc"),
    ],
)
def test_a_library_model_by_name_trains_in_a_comparison(model, options, library_head, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(digits_config(model, **options)))
    assert cli.main(["compare", "--config", str(path), "--out", str(tmp_path / "C")]) == 0
    for method in ("ce", "mr2"):
        result = json.loads((tmp_path / "C" / method / "seed0" / "result.json").read_text())
        assert result["test"]["overall"] > 0.2  # it learned (10 classes: chance 0.1)
        assert result["identity"]["model.name"] == model
    net = models.create(model, (1, 8, 8), 10, **options)
    logits, features = net(torch.zeros(2, 1, 8, 8))
    assert logits.shape == (2, 10) and features.shape[0] == 2
    inner = net.model if isinstance(net, external.RepeatChannels) else net
    assert inner.head_name == library_head


def test_library_names_and_options_are_checked_before_training():
    problems = validate.problems(digits_config("timm:test_resnett"))
    assert any(
        "timm has no model 'test_resnett'" in p and "timm:test_resnet" in p for p in problems
    )
    problems = validate.problems(digits_config("torchvision:resnet18", widht=3))
    assert any(
        p.startswith("model.options: 'torchvision:resnet18' does not build") and "widht" in p
        for p in problems
    )
    problems = validate.problems(digits_config("torchvision:resnet18", width_per_group=16))
    assert any("BasicBlock only supports" in p for p in problems)  # a value it refuses
    assert not validate.problems(digits_config("torchvision:resnet18", weights=None))
    with pytest.raises(ValueError, match="takes images"):
        models.create("timm:test_resnet", (16,), 3)


def test_a_missing_library_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a)
    )
    assert validate.problems(digits_config("timm:resnet18")) == [
        "model.name = 'timm:resnet18' needs timm: pip install 'mr2[vision]'"
    ]


def test_registration_refuses_what_the_engine_could_not_use():
    with pytest.raises(ValueError, match="library"):
        models.register("timm:mine", lambda input_shape, num_classes: None)
    with pytest.raises(ValueError, match=r"must take \['seed', 'val_fraction'\]"):
        data.register("no_split", lambda n=3: None)


def test_user_model_and_dataset_from_import_train_in_a_pool_comparison(tmp_path):
    """``mr2 --import plugin_example compare``: the registered model and dataset are
    checked like mr2's own, and the pool's worker processes import the module too."""
    cfg = tiny_config(model__name="user_net", loss__name="mr2")
    cfg.model.options = {"width": 16}
    cfg.data.name, cfg.data.options = "user_blobs", {"n": 240}
    cfg.compare.methods, cfg.compare.seeds, cfg.compare.grid = ["ce", "mr2"], [0, 1], {}
    cfg.compare.executor, cfg.compare.jobs = "pool", 2
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("MR2_IMPORT", None)
    command = [sys.executable, "-m", "mr2", "--import", "plugin_example", "compare"]
    done = subprocess.run(
        [*command, "--config", str(path), "--out", str(tmp_path / "C")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for method in ("ce", "mr2"):
        for seed in (0, 1):
            result = json.loads(
                (tmp_path / "C" / method / f"seed{seed}" / "result.json").read_text()
            )
            assert result["test"]["overall"] > 0.5
    bad = subprocess.run(
        [*command, "--config", str(path), "--out", str(tmp_path / "D"),
         "--set", "model.options.widht=3"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode != 0 and "does not take it" in bad.stderr and "width" in bad.stderr
    plain = [sys.executable, "-m", "mr2", "compare", "--config", str(path)]
    without = subprocess.run(
        [*plain, "--out", str(tmp_path / "E")], env=env, capture_output=True, text=True
    )
    assert without.returncode != 0 and "unknown model 'user_net'" in without.stderr


def test_the_guide_s_own_model_and_dataset_train_with_the_cli(tmp_path, capsys, monkeypatch):
    """The code of docs/guides/any-model.md, as a user copies it into my_models.py."""
    guide = (HERE.parent / "docs" / "guides" / "any-model.md").read_text()
    code = guide.split("```python\n")[1].split("```")[0]
    (tmp_path / "guide_models.py").write_text(code.replace('"my_data"', '"guide_data"'))
    cfg = tiny_config(model__name="small_net", loss__name="mr2")
    cfg.model.options, cfg.data.name, cfg.data.options = {"width": 16}, "guide_data", {}
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg).replace("small_net", "guide_net"))
    (tmp_path / "guide_models.py").write_text(
        (tmp_path / "guide_models.py").read_text().replace('"small_net"', '"guide_net"')
    )
    monkeypatch.chdir(tmp_path)  # --import finds modules in the current folder
    monkeypatch.setenv("MR2_IMPORT", "")  # restored after the test (load() records modules)
    monkeypatch.setattr(sys, "path", list(sys.path))
    argv = ["--import", "guide_models", "train", "--config", str(path), "--out", "run"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert os.environ["MR2_IMPORT"] == "guide_models"  # handed on to worker processes
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test"]["overall"] > 0.6


def test_the_plugins_guide_s_one_file_plugs_in_every_kind(tmp_path):
    """docs/guides/plugins.md's module, imported by ``mr2 --import``: its loss (with its
    validation hook and a series of its own), model, dataset, executor (chosen on the
    command line, with its own option) and logger run one comparison together; its dataset
    layout is registered."""
    guide = (HERE.parent / "docs" / "guides" / "plugins.md").read_text()
    (tmp_path / "my_plugins.py").write_text(guide.split("```python\n")[1].split("```")[0])
    cfg = tiny_config(model__name="two_layer", train__loggers=["epoch_json"])
    cfg.data.name, cfg.data.options, cfg.model.options = "blobs", {"n": 240}, {"width": 16}
    cfg.compare.methods, cfg.compare.seeds, cfg.compare.grid = ["ce", "val_weighted"], [0], {}
    cfg.compare.executor_options = {"journal": "runs.txt"}
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("MR2_IMPORT", None)
    command = [sys.executable, "-m", "mr2", "--import", "my_plugins"]
    out = ["--config", str(path), "--out", str(tmp_path / "C")]
    done = subprocess.run(
        [*command, "compare", *out, "--executor", "here_reversed"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.index("val_weighted seed 0") < done.stdout.index("ce seed 0")  # reversed
    journal = (tmp_path / "C" / "runs.txt").read_text().splitlines()  # its own option
    assert journal == ["val_weighted seed 0", "ce seed 0"]
    run = tmp_path / "C" / "val_weighted" / "seed0"
    result = json.loads((run / "result.json").read_text())
    assert result["config"]["model"]["name"] == "two_layer"
    assert result["config"]["data"]["name"] == "blobs"
    for record in result["history"]:  # weights and errors from each epoch's validation
        error = [1.0 - a for a in record["val_per_class"]]
        mean = sum(max(e, 1e-3) for e in error) / len(error)
        assert record["class_weights"] == pytest.approx([max(e, 1e-3) / mean for e in error])
        assert record["series"]["val_error"] == pytest.approx(error)
    logged = [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines()]
    assert len(logged) == len(result["history"])  # the plug-in logger, every epoch
    last = result["history"][-1]["series"]["val_error"]
    names = result["dataset"]["class_names"]
    assert [logged[-1][f"series/val_error/{c}"] for c in names] == pytest.approx(last)
    listed = subprocess.run(
        [*command, "losses"], env=env, capture_output=True, text=True, timeout=300
    )
    assert "val_weighted" in listed.stdout
    unknown = subprocess.run(  # the choice list is the registry's: without the import, no
        [sys.executable, "-m", "mr2", "compare", *out, "--executor", "here_reversed"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert unknown.returncode == 2 and "invalid choice: 'here_reversed'" in unknown.stderr
    code = "import my_plugins, mr2.data; print('tiles' in mr2.data.available())"
    tiles = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert tiles.stdout.strip() == "True", tiles.stderr
