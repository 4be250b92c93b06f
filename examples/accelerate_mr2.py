"""MR² with Hugging Face Accelerate: the same model and data as examples/lightning_mr2.py in
a plain loop that ``accelerate`` runs on one process, on CPUs under torchrun, or on GPUs;
cross-entropy is trained beside MR² and both are printed.

    python examples/accelerate_mr2.py --out runs/acc                          # one process
    torchrun --standalone --nproc_per_node 2 examples/accelerate_mr2.py --out runs/acc_ddp
    accelerate launch examples/accelerate_mr2.py --out runs/acc               # your config
    mr2 report runs/acc/ce/run runs/acc/mr2/run

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--losses", default="ce,mr2", help="comma-separated mr2 loss names")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16, help="global batch")
    ap.add_argument("--train-size", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    scores = {name: fit(name, args, accelerator) for name in args.losses.split(",")}
    for name, (accuracy, worst) in scores.items():
        accelerator.print(
            f"{name}: test accuracy {accuracy:.3f}, worst class {worst:.3f} (chance 0.2)"
        )
    accelerator.end_training()


def fit(loss: str, args: argparse.Namespace, accelerator: Accelerator) -> tuple[float, float]:
    """Train one loss; record its test run under OUT/<loss>; (accuracy, worst class)."""
    torch.manual_seed(0)
    model = with_features(resnet18(num_classes=K, norm_layer=lambda c: nn.GroupNorm(8, c)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train = DataLoader(synthetic(args.train_size, 1), batch_size=args.batch, shuffle=False)
    val = DataLoader(synthetic(40, 2), batch_size=args.batch)
    model, optimizer, train, val = accelerator.prepare(model, optimizer, train, val)
    if loss == "mr2":
        loss_fn = MR2Loss(K, gather_features=True).to(accelerator.device)
    else:  # any mr2 loss has the same call: loss_fn(logits, features, targets)
        loss_fn = losses.create(loss, num_classes=K).to(accelerator.device)
    disparity = DisparityMetric(K).to(accelerator.device)
    for epoch in range(args.epochs):
        model.train()
        loss_fn.train()
        for x, y in train:
            logits, features = model(x)
            value = loss_fn(logits, features, y)
            optimizer.zero_grad()
            accelerator.backward(value)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in val:
                disparity.update(model(x)[0], y)
        summary = disparity.compute()  # counts summed over the processes
        disparity.reset()
        accelerator.print(
            f"{loss} epoch {epoch + 1}: loss {value.item():.4f}, val worst class "
            f"{float(summary['worst_class']):.3f}, mean-class {float(summary['mean_class']):.3f}"
        )
    if not accelerator.is_main_process:
        return float("nan"), float("nan")
    out = Path(args.out) / loss
    test = synthetic(200, 3)
    with torch.no_grad():
        logits, features = accelerator.unwrap_model(model)(test.tensors[0].to(accelerator.device))
    result = record_run(
        out / "run",
        method=loss,
        seed=args.seed,
        y_true=test.tensors[1],
        logits=logits.cpu(),
        features=features.cpu(),
        config={"dataset": "synthetic", "trainer": "accelerate", "epochs": args.epochs},
    )
    if isinstance(loss_fn, MR2Loss):
        margins = {"margins": loss_fn.margins().tolist(), "s_bar": float(loss_fn.s_bar())}
        (out / "margins.json").write_text(json.dumps(margins))
    return result.test.overall, min(result.test.per_class)


if __name__ == "__main__":
    main()
