"""DisparityMetric (torchmetrics): equal to mr2.metrics and to torchmetrics' own per-class
accuracy, usable in a MetricCollection, summed across DDP processes."""

import numpy as np
import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from mr2.metrics import classwise_accuracy, disparity_summary
from mr2.metrics.disparity_metric import DisparityMetric, DisparityScalar


def predictions(n=300, k=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k - 1, (n,), generator=g)  # class k-1 absent: NaN
    logits = torch.randn(n, k, generator=g) + 2.0 * torch.nn.functional.one_hot(y, k)
    return logits, y


def test_equals_mr2_metrics_and_torchmetrics_per_class():
    logits, y = predictions()
    metric = DisparityMetric(7, per_class=True)
    for chunk in torch.arange(len(y)).split(37):
        metric.update(logits[chunk], y[chunk])
    out = metric.compute()
    ours = classwise_accuracy(logits, y, 7)
    torch.testing.assert_close(out["per_class"], ours.double(), equal_nan=True)
    summary = disparity_summary(ours, class_counts=torch.bincount(y, minlength=7)).as_dict()
    for name, value in summary.items():
        if isinstance(value, float) and name not in ("easy", "medium", "hard"):
            assert float(out[name]) == pytest.approx(value, nan_ok=True), name
    # easy / medium / hard cross-fitted, by hand: each class's samples alternate between two
    # halves in arrival order; rank the 6 present classes on one half, score the other
    hit = (logits.argmax(1) == y).numpy()
    yy = y.numpy()
    halves = np.zeros((2, 7))
    for c in range(6):
        h = hit[yy == c]
        halves[:, c] = h[0::2].mean(), h[1::2].mean()
    expect = {"easy": [], "medium": [], "hard": []}
    for rank, scored in ((halves[0], halves[1]), (halves[1], halves[0])):
        order = np.argsort(-rank[:6], kind="stable")  # 6 present classes: 2 / 2 / 2
        for g, members in zip(expect, np.array_split(order, 3), strict=True):
            expect[g].append(scored[members].mean())
    for g, values in expect.items():
        assert float(out[g]) == pytest.approx(np.mean(values)), g
    tm = MulticlassAccuracy(num_classes=7, average="none")(logits, y)
    present = ~torch.isnan(out["per_class"])
    torch.testing.assert_close(out["per_class"][present].float(), tm[present])
    assert torch.isnan(out["per_class"][6])


def test_in_a_metric_collection_with_a_reference():
    logits, y = predictions(seed=1)
    ref = torch.linspace(0.2, 0.9, 7)
    collection = MetricCollection({"disparity": DisparityMetric(7, reference=ref)}, prefix="val/")
    collection.update(logits, y)
    out = collection.compute()
    expect = disparity_summary(classwise_accuracy(logits, y, 7), reference=ref).hard
    assert float(out["val/hard"]) == pytest.approx(expect)
    assert all(v.dim() == 0 for v in out.values())  # loggable with log_dict


@pytest.mark.ddp
def test_ddp_sync_sums_counts():
    import ddp
    import ddp_workers

    ranks = ddp.run(ddp_workers.disparity_metric_worker, 2)
    logits, y = predictions()
    single = DisparityMetric(7, per_class=True)
    single.update(logits, y)
    expect = single.compute()
    for r in ranks:
        torch.testing.assert_close(r["per_class"], expect["per_class"], equal_nan=True)
        assert r["worst_class"] == pytest.approx(float(expect["worst_class"]))


def test_scalar_members_log_the_lightning_way_and_share_state_in_a_collection(tmp_path):
    """``self.log(name, DisparityScalar(...))`` in a LightningModule (Lightning computes and
    resets it per epoch) gives what DisparityMetric computes over the same predictions."""
    import lightning as L

    logits, y = predictions(n=120)
    data = torch.utils.data.TensorDataset(logits, y)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))
            self.worst = DisparityScalar(7, "worst_class")
            self.hard = DisparityScalar(7, "hard")

        def validation_step(self, batch, _):
            z, target = batch
            self.worst(z * self.scale, target)
            self.hard(z * self.scale, target)
            self.log("val/worst", self.worst, on_epoch=True)
            self.log("val/hard", self.hard, on_epoch=True)

    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.validate(Module(), torch.utils.data.DataLoader(data, batch_size=32), verbose=False)
    whole = DisparityMetric(7)
    for chunk in torch.arange(len(y)).split(32):
        whole.update(logits[chunk], y[chunk])
    expected = whole.compute()
    assert float(trainer.callback_metrics["val/worst"]) == pytest.approx(
        float(expected["worst_class"])
    )
    assert float(trainer.callback_metrics["val/hard"]) == pytest.approx(float(expected["hard"]))
    collection = MetricCollection(
        {"w": DisparityScalar(7, "worst_class"), "g": DisparityScalar(7, "gap")}
    )
    collection.update(logits, y)
    assert len(collection.compute_groups) == 1  # one confusion state for both members
    assert float(collection.compute()["g"]) == pytest.approx(float(expected["gap"]))
    with pytest.raises(ValueError, match="field must be one of"):
        DisparityScalar(7, "worst")
