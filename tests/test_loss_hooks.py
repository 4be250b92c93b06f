"""A loss tells the engine what it needs through hooks (``ClassLoss.internals``,
``on_validation``, ``feature_gradient_ratio``): a stateful loss defined and registered in
this test module alone trains in the engine, the engine naming no loss class."""

import pytest
import torch
import torch.nn.functional as F

from helpers import tiny_config
from mr2 import losses
from mr2.engine.train import train
from mr2.losses.base import ClassLoss
from mr2.losses.registry import LOSSES


class ValidationSum(ClassLoss):
    """Cross-entropy that keeps the running sum of the validation accuracies it is shown."""

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.register_buffer("total", torch.zeros(num_classes))

    def on_validation(self, per_class_accuracy):
        self.total.add_(per_class_accuracy.to(self.total))

    def internals(self):
        return {"class_weights": self.total.tolist()}

    def feature_gradient_ratio(self, forward, targets):
        _, features = forward()
        return float(len(targets)) if features.requires_grad else None

    def per_sample(self, logits, features, targets):
        return F.cross_entropy(logits, targets, reduction="none")


@pytest.fixture
def registered():
    losses.register("validation_sum", "test: sums validation accuracies")(ValidationSum)
    yield
    LOSSES._entries.pop("validation_sum")


def test_a_stateful_loss_of_one_file_trains_through_its_hooks(registered, tmp_path):
    cfg = tiny_config(loss__name="validation_sum", train__epochs=3)
    result = train(cfg, tmp_path / "run", show_progress=False)
    total = torch.zeros(result.dataset.num_classes, dtype=torch.float64)
    for record in result.history:  # fed each epoch's validation accuracy, never test's
        total += torch.tensor(record.val_per_class, dtype=torch.float64)
        assert record.class_weights == pytest.approx(total.tolist())
        assert record.rep_grad_ratio == min(cfg.train.batch_size, result.dataset.sizes["train"])
    state = torch.load(tmp_path / "run" / "final.pt", weights_only=True)["loss"]
    assert state["total"].tolist() == pytest.approx(total.tolist())  # its state is saved
