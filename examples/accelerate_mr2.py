"""MR² with Hugging Face Accelerate: the same model and data as examples/lightning_mr2.py in
a plain loop that ``accelerate`` runs on one process, on CPUs under torchrun, or on GPUs.

    python examples/accelerate_mr2.py --out runs/acc                          # one process
    torchrun --standalone --nproc_per_node 2 examples/accelerate_mr2.py --out runs/acc_ddp
    accelerate launch examples/accelerate_mr2.py --out runs/acc               # your config
    mr2 report runs/acc/run

``DataLoaderConfiguration(split_batches=True)``: each global batch is split across the
processes, so a DDP run sees the batches one process would. MR2Loss stays outside
``prepare`` (it holds no parameters); its statistics are summed over the processes and its
representation term gathers features across them (``gather_features=True``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import resnet18

from mr2 import MR2Loss, with_features
from mr2.metrics.disparity_metric import DisparityMetric
from mr2.report import record_run

K = 5


def synthetic(n: int, seed: int) -> TensorDataset:
    """Images whose class is a colour pattern plus noise that grows with the class index."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % K
    patterns = torch.randn(K, 3, 1, 1, generator=g)
    noise = torch.randn(n, 3, 16, 16, generator=g) * (0.5 + y.view(-1, 1, 1, 1))
    return TensorDataset(patterns[y] + noise, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="global batch")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    torch.manual_seed(0)
    model = with_features(resnet18(num_classes=K, norm_layer=lambda c: nn.GroupNorm(8, c)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train = DataLoader(synthetic(64, 1), batch_size=args.batch, shuffle=False)
    val = DataLoader(synthetic(40, 2), batch_size=args.batch)
    model, optimizer, train, val = accelerator.prepare(model, optimizer, train, val)
    loss_fn = MR2Loss(K, gather_features=True).to(accelerator.device)
    disparity = DisparityMetric(K).to(accelerator.device)
    for epoch in range(args.epochs):
        model.train()
        loss_fn.train()
        for x, y in train:
            logits, features = model(x)
            loss = loss_fn(logits, features, y)
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in val:
                disparity.update(model(x)[0], y)
        summary = disparity.compute()  # counts summed over the processes
        disparity.reset()
        accelerator.print(
            f"epoch {epoch + 1}: loss {loss.item():.4f}, val worst class "
            f"{float(summary['worst_class']):.3f}, mean-class {float(summary['mean_class']):.3f}"
        )
    if accelerator.is_main_process:
        test = synthetic(50, 3)
        with torch.no_grad():
            logits, features = accelerator.unwrap_model(model)(
                test.tensors[0].to(accelerator.device)
            )
        record_run(
            out / "run",
            method="mr2",
            seed=args.seed,
            y_true=test.tensors[1],
            logits=logits.cpu(),
            features=features.cpu(),
            config={"dataset": "synthetic", "trainer": "accelerate", "epochs": args.epochs},
        )
        margins = {"margins": loss_fn.margins().tolist(), "s_bar": float(loss_fn.s_bar())}
        (out / "margins.json").write_text(json.dumps(margins))
        print(f"margins {margins['margins']}; report: mr2 report {out / 'run'}")
    accelerator.end_training()


if __name__ == "__main__":
    main()
