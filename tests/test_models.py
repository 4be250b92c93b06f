"""Models return (logits, features) with the documented shapes and sizes."""

import pytest
import torch

from mr2 import models


@pytest.mark.parametrize("name", models.available())
def test_logits_and_features(name):
    shape = {"mlp": (1, 8, 8), "linear": (12,)}.get(name, (3, 32, 32))
    model = models.create(name, shape, 7)
    logits, features = model(torch.randn(2, *shape))
    assert logits.shape == (2, 7) and features.shape == (2, model.feature_dim)
    assert torch.allclose(model.head(features), logits)


def test_reference_sizes():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # ResNet-32 with projection shortcuts: 0.47 M; WRN-28-10: 36.5 M (the paper's 36.5 M)
    assert round(count(models.create("resnet32", (3, 32, 32), 100)) / 1e6, 2) == 0.47
    assert round(count(models.create("wrn28_10", (3, 32, 32), 100)) / 1e6, 1) == 36.5
    # option A shortcuts (He et al.'s CIFAR ResNets): the well-known 0.46 M of ResNet-32
    a = models.create("resnet32", (3, 32, 32), 10, shortcut="A")
    assert round(count(a) / 1e6, 2) == 0.46


def test_option_a_shortcut_subsamples_and_zero_pads():
    block = models.resnet_cifar.BasicBlock(16, 32, 2, shortcut="A")
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])  # the input, centred
    assert not out[:, :8].any() and not out[:, 24:].any()  # the new channels: zeros
    with pytest.raises(ValueError, match="shortcut must be 'A'"):
        models.create("resnet32", (3, 32, 32), 10, shortcut="C")


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown model"):
        models.create("vgg", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="does not take option"):
        models.create("mlp", (1, 8, 8), 10, widht=3)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.create("resnet32", (3, 32, 32), 10, depth=30)


def test_airbench_is_its_published_layout():
    model = models.create("airbench", (3, 32, 32), 10)
    # airbench94: 2x2 stem of 24, blocks of 64, 256, 256, bias-free head scaled by 1/9
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (3, 24, (2, 2)),
        (24, 64, (3, 3)),
        (64, 64, (3, 3)),
        (64, 256, (3, 3)),
        (256, 256, (3, 3)),
        (256, 256, (3, 3)),
        (256, 256, (3, 3)),
    ]
    x = torch.randn(3, 3, 32, 32)
    model.eval()
    logits, features = model(x)
    # features: the global max over the last block's map; logits: W f / 9
    assert torch.equal(features, model.blocks(model.stem(x)).flatten(2).max(dim=2).values)
    assert torch.allclose(logits, features @ model.head.weight.T / 9, atol=1e-6)
    small = models.create("airbench", (3, 32, 32), 10, widths=[16, 32, 64])
    assert small.feature_dim == 64
    with pytest.raises(ValueError, match="three positive widths"):
        models.create("airbench", (3, 32, 32), 10, widths=[16, 32])
    with pytest.raises(ValueError, match="\\(C, H, W\\) images"):
        models.create("airbench", (784,), 10)


@pytest.mark.parametrize(
    ("name", "options", "message", "config_message"),
    [
        ("mlp", {"width": 0}, "width must be a positive integer, got 0", None),
        ("cnn", {"width": 2.5}, "width must be a positive integer", "width: expected int"),
        ("wrn16_2", {"width": -1}, "width must be a positive integer", None),
        ("airbench", {"widths": [16, 0, 8]}, "widths must be a list of positive integers", None),
        ("airbench", {"stem_width": True}, "stem_width must be a positive", "expected int"),
    ],
)
def test_impossible_sizes_are_refused_before_anything_is_built(
    name, options, message, config_message, tmp_path, capsys
):
    """By the model itself, and by the whole-config check (which checks the options' types
    against the model's signature first)."""
    with pytest.raises(ValueError, match=message):
        models.create(name, (3, 32, 32), 10, **options)
    from mr2 import cli

    argv = ["train", "--out", str(tmp_path / "R"), "--set", f"model.name={name}"]
    key, value = next(iter(options.items()))
    argv += ["--set", f"model.options={{{key} = {str(value).lower()}}}"]
    assert cli.main(argv) == 2 and not (tmp_path / "R").exists()
    message = config_message or message
    assert message.split(",")[0] in capsys.readouterr().err  # by the whole-config check
