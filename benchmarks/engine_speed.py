"""Epoch time of mr2's engine against a minimal hand-written PyTorch loop doing the same work.

Same data (Fashion-MNIST, all of it in training, on the same device: moved to the GPU
once there, as the engine does), same model, batch, SGD settings, per-step cosine learning
rate, full precision; the hand loop's loss is ``F.cross_entropy`` for CE (what a user writes)
and mr2's module for the others. The engine's epoch also writes its checkpoint and
log (its real cost); neither side validates. The first epoch of every run is warm-up; the
two sides alternate over ``--rounds`` (hand then engine, then engine then hand, ...), since
on a small CPU whatever runs first in a process runs slower; times are the medians over
every epoch after warm-up of every round.

    python benchmarks/engine_speed.py [--device cuda] [--models mlp cnn] [--losses ce mr2]
        [--epochs 3] [--rounds 2] [--subset 0] [--set train.channels_last=true] [--out FILE]

Prints a markdown table; writes the numbers with machine, versions and commit to JSON
(default ``benchmarks/results/engine_speed_<device>.json``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe, save
from mr2 import data, losses, models
from mr2.engine import config
from mr2.engine.train import train

MODELS = {"mlp": {"width": 256, "depth": 2}, "cnn": {"width": 32}}
LR, MOMENTUM, WD, BATCH = 0.05, 0.9, 5e-4, 128


def engine_epochs(model: str, loss: str, args) -> list[float]:
    cfg = config.load(
        None,
        [
            "data.name=fashion_mnist",
            "data.val_fraction=0",
            f"data.train_subset={args.subset}",
            f"model.name={model}",
            f"loss.name={loss}",
            f"optim.lr={LR}",
            f"optim.weight_decay={WD}",
            f"train.epochs={args.epochs}",
            f"train.batch_size={BATCH}",
            f"train.device={args.device}",
            *args.set,
        ],
    )
    cfg.model.options = dict(MODELS[model])
    with tempfile.TemporaryDirectory() as tmp:
        history = train(cfg, Path(tmp) / "run", show_progress=False).history
    ends = [h.time_s for h in history]
    return [b - a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def hand_epochs(model_name: str, loss_name: str, args) -> list[float]:
    """The loop a PyTorch user writes by hand, with the engine's data, model and loss."""
    device = torch.device(args.device)
    ds = data.load("fashion_mnist", val_fraction=0.0, train_subset=args.subset)
    x, y = ds.train.x.to(device), ds.train.y.to(device)
    torch.manual_seed(0)
    model = models.create(model_name, ds.input_shape, 10, **MODELS[model_name]).to(device)
    loss_fn = losses.create(loss_name, num_classes=10, validate=False).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    steps = len(y) // BATCH
    times = []
    for epoch in range(args.epochs):
        sync(device)
        start = time.perf_counter()
        order = torch.randperm(len(y), device=device)
        for i in range(steps):
            idx = order[i * BATCH : (i + 1) * BATCH]
            t = (epoch * steps + i) / (args.epochs * steps)
            for group in opt.param_groups:
                group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * t))
            logits, features = model(x[idx])
            if loss_name == "ce":
                loss = F.cross_entropy(logits, y[idx])
            else:
                loss = loss_fn(logits, features, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=sorted(MODELS))
    ap.add_argument("--losses", nargs="+", default=["ce", "mr2"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each side")
    ap.add_argument("--subset", type=int, default=0, help="training images (0 = all 60,000)")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="engine settings to measure, e.g. train.channels_last=true train.compile=true "
        "(the hand loop stays plain: the ratio shows what the setting gains)",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (the first epoch is warm-up)")
    rows = []
    for model in args.models:
        for loss in args.losses:
            hand, engine = [], []
            for r in range(args.rounds):
                sides = [(hand, hand_epochs), (engine, engine_epochs)]
                for times, run in sides if r % 2 == 0 else sides[::-1]:
                    times += run(model, loss, args)[1:]
            rows.append(
                {
                    "model": model,
                    "loss": loss,
                    "hand_s": statistics.median(hand),
                    "engine_s": statistics.median(engine),
                    "hand_epochs_s": hand,
                    "engine_epochs_s": engine,
                }
            )
            rows[-1]["ratio"] = rows[-1]["engine_s"] / rows[-1]["hand_s"]
            print(f"# {model} {loss}: {rows[-1]}", file=sys.stderr, flush=True)
    print("| model | loss | hand loop s/epoch | mr2 engine s/epoch | engine / hand |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['loss']} | {r['hand_s']:.3f} | {r['engine_s']:.3f} | "
            f"{r['ratio']:.2f}x |"
        )
    settings = {
        "epochs": args.epochs,
        "rounds": args.rounds,
        "subset": args.subset,
        "batch": BATCH,
        "engine_settings": args.set,
    }
    out = args.out or Path(__file__).parent / "results" / f"engine_speed_{args.device}.json"
    meta = describe(args.device)
    print(f"\nraw numbers: {save({'meta': meta, 'settings': settings, 'rows': rows}, out)}")


if __name__ == "__main__":
    main()
