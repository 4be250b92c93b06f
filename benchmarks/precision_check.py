"""Mixed-precision training of ResNet-32 with MR², through the engine: float16 autocast with
a gradient scaler, bfloat16 autocast, and full precision for reference.

Each run trains a few epochs on CIFAR-10 JPEG (``../shared/data``, split as the study
does) and is checked: every epoch's loss finite, every margin finite and positive, the
margins' mean over the classes equal to c_bar (1), the spreads finite; the final accuracy
is reported beside full precision's.

    python benchmarks/precision_check.py --data FILE.npz [--device cuda] [--epochs 3]
        [--subset 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe, save
from mr2.engine import config
from mr2.engine.train import train
from mr2.records.result import EpochRecord

CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def check(history: list[EpochRecord]) -> list[str]:
    """Every problem of a run's epochs (empty when sane)."""
    problems = []
    for h in history:
        e = h.epoch + 1
        if h.train_loss is None or not math.isfinite(h.train_loss):
            problems.append(f"epoch {e}: loss {h.train_loss}")
        margins = h.margins or []
        if not margins or not all(math.isfinite(m) and m > 0 for m in margins):
            problems.append(f"epoch {e}: margins {margins}")
        elif abs(sum(margins) / len(margins) - 1.0) > 1e-3:
            problems.append(f"epoch {e}: mean margin {sum(margins) / len(margins)} != c_bar 1")
        if not all(math.isfinite(s) for s in h.spreads or []):
            problems.append(f"epoch {e}: spreads {h.spreads}")
    return problems


def run(precision: str, args) -> dict:
    overrides = [
        "data.name=npz",
        f"data.path={args.data}",
        "data.augment=true",
        f"data.train_subset={args.subset}",
        "model.name=resnet32",
        "loss.name=mr2",
        "optim.lr=0.1",
        "optim.warmup_epochs=1.0",
        f"train.epochs={args.epochs}",
        f"train.device={args.device}",
        f"train.amp={'false' if precision == 'float32' else 'true'}",
        f"train.amp_dtype={'auto' if precision == 'float32' else precision}",
    ]
    cfg = config.load(None, overrides)
    cfg.data.options = {"class_names": CLASSES}
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, Path(tmp) / precision, show_progress=False)
    history = result.history
    return {
        "precision": precision,
        "problems": check(history),
        "test_overall": result.test.overall,
        "train_loss": [h.train_loss for h in history],
        "train_acc": [h.train_acc for h in history],
        "margins_last": history[-1].margins,
        "seconds": result.train_time_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="cifar10_jpeg_test.npz")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--subset", type=int, default=0, help="training images (0 = all)")
    ap.add_argument("--precisions", nargs="+", default=["float32", "float16", "bfloat16"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = [run(p, args) for p in args.precisions]
    print("| precision | test acc | final train loss | s | problems |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['precision']} | {100 * r['test_overall']:.2f} | {r['train_loss'][-1]:.4f} | "
            f"{r['seconds']:.1f} | {'; '.join(r['problems']) or 'none'} |"
        )
    out = args.out or Path(__file__).parent / "results" / f"precision_{args.device}.json"
    settings = {"epochs": args.epochs, "subset": args.subset}
    save({"meta": describe(args.device), "settings": settings, "rows": rows}, out)
    if any(r["problems"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
