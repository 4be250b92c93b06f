"""Fine-tuning a timm model with MR² and timm's mixup / cutmix.

    python examples/timm_mr2.py --out runs/timm [--model resnet18] [--weights FILE]
    mr2 report runs/timm/run

What MR² does with mixed targets: timm's ``Mixup`` (here per sample, ``mode="elem"``, with
label smoothing 0.1) returns soft targets ``(1 - eps) (lam_i onehot(y_i) + (1 - lam_i)
onehot(y_flip_i)) + eps / K``, and ``MR2Loss`` takes them as they are: the loss is its
expectation over the target distribution, each class with its own margin, and a mixed
sample counts ``lam_i`` towards its first class's statistics (the smoothing floor counts
for none; ``mr2.losses.mr2.soft``).

Timm's ``train.py`` users: build the loss as below and call it on ``(logits, features)``
from ``mr2.with_features(model)`` instead of the criterion on ``output``. The data here are
small synthetic images and the model has random weights (``--weights`` loads a local state
dict), so the example runs anywhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import timm
import torch
from timm.data import Mixup

from mr2 import MR2Loss, with_features
from mr2.report import record_run

K = 5


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % K
    patterns = torch.randn(K, 3, 1, 1, generator=g)
    return patterns[y] + torch.randn(n, 3, 32, 32, generator=g) * (0.5 + y.view(-1, 1, 1, 1)), y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--weights", help="a local state dict of the timm model (no download)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model = timm.create_model(args.model, pretrained=False, num_classes=K)
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    net = with_features(model)  # timm: forward_features + forward_head(pre_logits=True)
    loss_fn = MR2Loss(K)
    mixup = Mixup(
        mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, mode="elem", num_classes=K
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    x_all, y_all = synthetic(64, 1)
    for epoch in range(args.epochs):
        net.train()
        for idx in torch.arange(64).split(16):
            x, y = x_all[idx].clone(), y_all[idx]
            x, soft = mixup(x, y)  # (B, K) targets; x mixed in place with x.flip(0)
            logits, features = net(x)
            loss = loss_fn(logits, features, soft)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, margins {loss_fn.margins().tolist()}")
    net.eval()
    x_test, y_test = synthetic(50, 3)
    with torch.no_grad():
        logits, features = net(x_test)
    out = Path(args.out)
    record_run(
        out / "run",
        method="mr2",
        seed=args.seed,
        y_true=y_test,
        logits=logits,
        features=features,
        config={"dataset": "synthetic", "trainer": "timm", "model": args.model},
    )
    (out / "margins.json").write_text(json.dumps({"margins": loss_fn.margins().tolist()}))


if __name__ == "__main__":
    main()
