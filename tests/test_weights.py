"""Starting weights for any model and class count (``mr2.models.weights``): files the tests
write (state_dicts, checkpoints, safetensors), a library's named weights from a local
cache, offline failures that say how to pass a file, and the run's record of its weights."""

import json
import time
from pathlib import Path

import pytest
import timm  # in [dev]: make test installs it (tests/test_packaging.py checks)
import torch
import torchvision
from torch import nn

from helpers import tiny_config
from mr2 import cli, models
from mr2.engine import config, identity, validate
from mr2.models import weights


def tv_file(path: Path, classes: int = 1000) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    state = torchvision.models.resnet18(num_classes=classes).state_dict()
    torch.save(state, path)
    return state


def test_a_1000_class_torchvision_file_loads_into_a_10_class_model(tmp_path, capsys):
    state = tv_file(tmp_path / "in1k.pth")
    net = models.create("torchvision:resnet18", (3, 16, 16), 10, weights=str(tmp_path / "in1k.pth"))
    inner = net.model.state_dict()
    for name, value in state.items():
        if name.startswith("fc."):
            assert inner[name].shape[0] == 10  # the head is a fresh 10-class one
        else:
            assert torch.equal(inner[name], value), name
    said = capsys.readouterr().err
    assert "loaded 120 tensors" in said and "replaced the classifier (fc.weight, fc.bias)" in said


def test_grey_images_sum_a_timm_stem_and_safetensors_load(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(2)
    source = timm.create_model("test_resnet").state_dict()  # 3 channels, 1000 classes
    save_file(source, str(tmp_path / "w.safetensors"))
    net = models.create("timm:test_resnet", (1, 8, 8), 10, weights=str(tmp_path / "w.safetensors"))
    mine = net.state_dict()
    stem = next(k for k, v in source.items() if v.dim() == 4)
    assert torch.allclose(mine[stem], source[stem].sum(1, keepdim=True))
    loaded = [k for k in source if not k.startswith(("fc.", "head")) and k != stem]
    assert all(torch.equal(mine[k], source[k]) for k in loaded)


def test_checkpoints_and_prefixes_unwrap(tmp_path):
    state = tv_file(tmp_path / "plain.pth")
    ddp = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    torch.save(ddp, tmp_path / "ckpt.pt")
    read = weights.read_state_dict(tmp_path / "ckpt.pt")
    assert set(read) == set(state) and all(torch.equal(read[k], state[k]) for k in state)
    # grey images: torchvision's model sits inside RepeatChannels ("model." prefix)
    net = models.create("torchvision:resnet18", (1, 16, 16), 3, weights=str(tmp_path / "ckpt.pt"))
    assert torch.equal(net.model.state_dict()["conv1.weight"], state["conv1.weight"])


def test_mr2_own_model_from_a_run_checkpoint_of_another_class_count(tmp_path):
    torch.manual_seed(0)
    first = models.create("mlp", (1, 4, 4), 5, width=8)
    torch.save({"model": first.state_dict(), "loss": {}}, tmp_path / "final.pt")
    second = models.create("mlp", (1, 4, 4), 3, width=8, weights=str(tmp_path / "final.pt"))
    body = [k for k in first.state_dict() if not k.startswith("head.")]
    assert body and all(torch.equal(second.state_dict()[k], first.state_dict()[k]) for k in body)
    assert second.head.out_features == 3


def test_a_file_of_another_architecture_is_refused(tmp_path):
    tv_file(tmp_path / "r18.pth")
    with pytest.raises(ValueError, match=r"matches only 0 of the model.s .* not weights of this"):
        models.create("mlp", (1, 4, 4), 3, weights=str(tmp_path / "r18.pth"))


class Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/nonexistent/unpickled"),))


def test_a_file_with_code_is_not_unpickled(tmp_path):
    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="cannot be read as tensors"):
        weights.read_state_dict(tmp_path / "evil.pt")


def test_named_torchvision_weights_load_from_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("MR2_OFFLINE", "1")  # only the cache can answer
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = tv_file(cache / "resnet18-f37072fd.pth")
    net = models.create("torchvision:resnet18", (3, 16, 16), 10, weights="IMAGENET1K_V1")
    assert torch.equal(
        net.model.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"]
    )


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("torchvision:resnet18", {"weights": "IMAGENET1K_V1"}),
        ("timm:resnet18", {"pretrained": True}),
    ],
)
def test_offline_named_weights_fail_at_once_saying_how_to_pass_a_file(
    name, options, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("MR2_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"not in the local cache .* model.options.weights = "):
        models.create(name, (3, 16, 16), 10, **options)
    assert time.perf_counter() - start < 10  # no retries against an unreachable hub


def test_weights_options_are_checked_before_training(tmp_path):
    def problems(model, **options):
        cfg = tiny_config(model__name=model)
        cfg.data.name, cfg.data.options, cfg.model.options = "digits", {}, options
        return "\n".join(validate.problems(cfg))

    assert "has no weights 'IMAGENET1K_V9'; available: ['DEFAULT', 'IMAGENET1K_V1']" in problems(
        "torchvision:resnet18", weights="IMAGENET1K_V9"
    )
    assert "weights file 'nowhere.pth' does not exist" in problems("mlp", weights="nowhere.pth")
    assert "is not a file name" in problems("timm:test_resnet", weights="imagenet")
    assert "is not a file name" in problems("mlp", weights="imagenet")
    tv_file(tmp_path / "w.pth")
    both = problems("timm:test_resnet", pretrained=True, weights=str(tmp_path / "w.pth"))
    assert "named weights and a file" in both
    assert problems("mlp", weights=3) and "expected str" in problems("mlp", weights=3)


def test_a_weights_file_is_part_of_the_run_identity(tmp_path):
    torch.save(models.create("mlp", (1, 8, 8), 10, width=8).state_dict(), tmp_path / "w.pt")
    cfg = tiny_config(model__name="mlp")
    cfg.model.options = {"width": 8, "weights": str(tmp_path / "w.pt")}
    before = identity.fingerprint(identity.identity(cfg))
    torch.save(models.create("mlp", (1, 8, 8), 10, width=8).state_dict(), tmp_path / "w.pt")
    assert identity.fingerprint(identity.identity(cfg)) != before  # same path, new content


@pytest.mark.integration  # trains (a tiny run)
@pytest.mark.parametrize("model", ["torchvision:resnet18", "timm:test_resnet"])
def test_fine_tuning_from_a_1000_class_file_records_the_file(model, tmp_path, capsys):
    prefix = model.partition(":")[0]
    source = (
        torchvision.models.resnet18()
        if prefix == "torchvision"
        else timm.create_model("test_resnet")
    )
    assert isinstance(source, nn.Module)
    torch.save(source.state_dict(), tmp_path / "in1k.pth")
    cfg = tiny_config(model__name=model, loss__name="ce")
    cfg.data.name, cfg.data.options, cfg.data.train_subset = "digits", {}, 200
    cfg.model.options = {"weights": str(tmp_path / "in1k.pth")}
    cfg.train.epochs, cfg.train.batch_size = 1, 50
    (tmp_path / "c.toml").write_text(config.to_toml(cfg))
    assert (
        cli.main(["train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")]) == 0
    )
    said = capsys.readouterr().err
    assert "replaced the classifier" in said and "left random: none" in said
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["weights"]["kind"] == "file"
    assert result["weights"]["name"] == str((tmp_path / "in1k.pth").resolve())
    import hashlib

    digest = hashlib.sha256((tmp_path / "in1k.pth").read_bytes()).hexdigest()
    assert result["weights"]["sha256"] == result["identity"]["model.weights_sha256"] == digest
    assert cli.main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "rep")]) == 0
    assert (
        f"file {(tmp_path / 'in1k.pth').resolve()} (sha256 {digest[:12]})"
        in (tmp_path / "rep" / "report.md").read_text()
    )
