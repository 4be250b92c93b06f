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


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown model"):
        models.create("vgg", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="does not take option"):
        models.create("mlp", (1, 8, 8), 10, widht=3)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.create("resnet32", (3, 32, 32), 10, depth=30)
