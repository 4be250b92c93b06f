"""MR² in PyTorch Lightning: a torchvision ResNet-18 through ``mr2.with_features``,
``MR2Loss`` trained beside cross-entropy, the ``DisparityMetric`` logged every validation
epoch, checkpoint + resume (the margins are buffers of the loss module, so every checkpoint
holds them) and DDP.

    python examples/lightning_mr2.py --out runs/lightning                 # CE and MR²
    python examples/lightning_mr2.py --out runs/ddp --devices 2 --losses mr2  # DDP, 2 CPUs
    python examples/lightning_mr2.py --out runs/l2 --losses mr2 --resume runs/l1/mr2/last.ckpt
    mr2 report runs/lightning/ce/run runs/lightning/mr2/run               # the report

The data are small synthetic images (5 classes of different difficulty) so that the
example runs anywhere in seconds; put your own DataLoaders in their place. The ResNet uses
GroupNorm: BatchNorm statistics are per process, so under DDP on CPUs the run would differ
from one process (on GPUs use ``Trainer(sync_batchnorm=True)`` with BatchNorm instead).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from torchvision.models import resnet18

from mr2 import MR2Loss, losses, with_features
from mr2.metrics.disparity_metric import DisparityMetric
from mr2.report import record_run

K = 5


def synthetic(n: int, seed: int) -> TensorDataset:
    """Images whose class is a fixed random pattern (the same in every split) plus noise
    that grows with the class index, so the classes differ in difficulty."""
    patterns = torch.randn(K, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % K
    noise = torch.randn(n, 3, 16, 16, generator=g) * (0.6 * (1 + y.view(-1, 1, 1, 1)))
    return TensorDataset(patterns[y] + noise, y)


class MR2Module(L.LightningModule):
    def __init__(self, loss: str = "mr2", lr: float = 1e-3, batch: int = 16, n_train: int = 160):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        net = resnet18(num_classes=K, norm_layer=lambda c: nn.GroupNorm(8, c))
        self.model = with_features(net)  # forward -> (logits, features of the fc input)
        # gather_features: under DDP each sample meets its same-class partners on every rank
        if loss == "mr2":
            self.loss_fn = MR2Loss(K, gather_features=True)
        else:  # any mr2 loss has the same call: loss_fn(logits, features, targets)
            self.loss_fn = losses.create(loss, num_classes=K)
        self.val_disparity = DisparityMetric(K)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits, features = self.model(x)
        loss = self.loss_fn(logits, features, y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_disparity.update(self.model(x)[0], y)

    def on_validation_epoch_end(self):
        self.log_dict({f"val/{k}": v for k, v in self.val_disparity.compute().items()})
        self.val_disparity.reset()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    def _loader(self, dataset: TensorDataset) -> DataLoader:
        """The global batch ``batch`` split over the processes in a fixed order, so that a DDP
        run sees the batches one process would (swap in your own loaders and samplers)."""
        world, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = DistributedSampler(dataset, world, rank, shuffle=False) if world > 1 else None
        return DataLoader(dataset, batch_size=self.hparams.batch // world, sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._loader(synthetic(self.hparams.n_train, 1))

    def val_dataloader(self) -> DataLoader:
        return self._loader(synthetic(40, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--losses", default="ce,mr2", help="comma-separated mr2 loss names")
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16, help="global batch (split over devices)")
    ap.add_argument("--train-size", type=int, default=160)
    ap.add_argument("--resume", help="a checkpoint to continue from (one loss only)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = args.losses.split(",")
    if args.resume and len(names) != 1:
        ap.error("--resume continues one run: name its loss with --losses")
    scores = {name: fit(name, args) for name in names}
    for name, (accuracy, worst) in scores.items():
        print(f"{name}: test accuracy {accuracy:.3f}, worst class {worst:.3f} (chance 0.2)")


def fit(loss: str, args: argparse.Namespace) -> tuple[float, float]:
    """Train one loss; record its test run under OUT/<loss>; (accuracy, worst class)."""
    out = Path(args.out) / loss
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        default_root_dir=out,
        logger=L.pytorch.loggers.CSVLogger(out),
        callbacks=[L.pytorch.callbacks.ModelCheckpoint(dirpath=out, save_last=True)],
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        use_distributed_sampler=False,  # the module's loaders shard the data themselves
    )
    module = MR2Module(loss, batch=args.batch, n_train=args.train_size)
    trainer.fit(module, ckpt_path=args.resume)
    if not trainer.is_global_zero:
        return float("nan"), float("nan")
    test = synthetic(200, 3)
    module.eval()
    with torch.no_grad():
        logits, features = module.model(test.tensors[0])
    result = record_run(  # so that `mr2 report` compares this run with others
        out / "run",
        method=loss,
        seed=args.seed,
        y_true=test.tensors[1],
        logits=logits,
        features=features,
        config={"dataset": "synthetic", "trainer": "lightning", "epochs": args.epochs},
    )
    if isinstance(module.loss_fn, MR2Loss):
        margins = {
            "margins": module.loss_fn.margins().tolist(),
            "s_bar": float(module.loss_fn.s_bar()),
        }
        (out / "margins.json").write_text(json.dumps(margins))
    return result.test.overall, min(result.test.per_class)


if __name__ == "__main__":
    main()
