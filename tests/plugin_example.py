"""A user's module, as ``mr2 --import plugin_example`` loads it: one model and one dataset
registered with mr2 (tests/test_any_model.py)."""

import torch
from torch import nn

import mr2.data
import mr2.models


class UserNet(nn.Module):
    """A plain classifier returning logits only (mr2 reads the features at its last Linear)."""

    def __init__(self, in_features: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x))


def user_net(input_shape, num_classes, width=24):
    return UserNet(int(torch.tensor(input_shape).prod()), num_classes, width)


def user_blobs(*, val_fraction=0.1, seed=0, n=300, classes=3):
    g = torch.Generator().manual_seed(7)
    y = torch.arange(n) % classes
    x = torch.randn(n, 1, 4, 4, generator=g) + y.view(-1, 1, 1, 1).float()
    test = mr2.data.Split(x[: n // 3], y[: n // 3])
    return mr2.data.make_dataset(
        "user_blobs", mr2.data.Split(x, y), test, classes, val_fraction=val_fraction, seed=seed
    )


mr2.models.register("user_net", user_net)
mr2.data.register("user_blobs", user_blobs)
