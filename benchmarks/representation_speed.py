"""Forward + backward time of MR²'s representation term: the B x B Gram against the list of
same-class pairs, over batch size B, classes K and width D (CPU).

The pair list costs O(P * D) for P ~ B^2 / (2K) same-class pairs, the Gram O(B^2 * D) in
one matrix product; ``mr2.representation.PAIRS_PER_GRAM_ENTRY`` (the ratio B^2 / P from
which the pair list runs) is read off this table. A second table times a whole training
step of ``MR2Loss`` (linear head + loss) with the list against the Gram fused into the loss's
terms, over the batch sizes where ``mr2.representation.LIST_FROM_BATCH`` is read off. Both
forms run in one process, interleaved, after warm-up; medians over ``--repeats``.

    python benchmarks/representation_speed.py [--repeats 50] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe, save
from mr2 import MR2Loss
from mr2 import representation as R

SHAPES = [
    (128, 10, 256),
    (128, 20, 256),
    (256, 30, 512),
    (128, 50, 256),
    (128, 50, 640),
    (128, 100, 640),
    (256, 100, 256),
    (512, 100, 512),
    (512, 1000, 768),
    (1024, 1000, 2048),
]

LOSS_SHAPES = [(64, 100, 256), (128, 100, 640), (192, 100, 640), (256, 100, 512), (128, 1000, 640),
               (256, 1000, 640), (512, 1000, 768)]  # fmt: skip


def step(f: torch.Tensor, y: torch.Tensor, gram: bool) -> None:
    f.grad = None
    R.representation_margin(f, y, torch.tensor(0.5), 1.0, None, not gram).sum().backward()


def measure(b: int, k: int, d: int, repeats: int) -> dict:
    torch.manual_seed(0)
    f = torch.randn(b, d, requires_grad=True)
    y = torch.randint(0, k, (b,))
    pairs = int((y.unsqueeze(1) == y.unsqueeze(0)).triu(1).sum())
    times: dict[str, list[float]] = {"gram": [], "pairs": []}
    for i in range(repeats + 3):
        for name in times:
            t0 = time.perf_counter()
            step(f, y, gram=name == "gram")
            if i >= 3:  # warm-up
                times[name].append(time.perf_counter() - t0)
    gram, listed = (1e3 * statistics.median(times[m]) for m in ("gram", "pairs"))
    return {"B": b, "K": k, "D": d, "pairs": pairs, "gram_ms": gram, "pairs_ms": listed}


def measure_loss(b: int, k: int, d: int, repeats: int) -> dict:
    """A training step of ``MR2Loss(validate=False)`` and a linear head, the pair list on
    the CPU from any batch size against the Gram (pair list off)."""
    torch.manual_seed(0)
    head, f = torch.nn.Linear(d, k), torch.randn(b, d, requires_grad=True)
    y = torch.randint(0, k, (b,))
    listed_from = R.LIST_FROM_BATCH
    losses = {"gram": MR2Loss(k, validate=False), "pairs": MR2Loss(k, validate=False)}
    times: dict[str, list[float]] = {name: [] for name in losses}
    try:
        for i in range(repeats + 3):
            for name, loss_fn in losses.items():
                R.LIST_FROM_BATCH = 0 if name == "pairs" else sys.maxsize
                f.grad = None
                t0 = time.perf_counter()
                loss_fn(head(f), f, y).backward()
                if i >= 3:
                    times[name].append(time.perf_counter() - t0)
    finally:
        R.LIST_FROM_BATCH = listed_from
    gram, pairs = (1e3 * statistics.median(times[m]) for m in ("gram", "pairs"))
    return {"B": b, "K": k, "D": d, "gram_ms": gram, "pairs_ms": pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--shapes", nargs="+", default=[",".join(map(str, s)) for s in SHAPES], metavar="B,K,D"
    )
    args = ap.parse_args()
    R.PAIRS_PER_GRAM_ENTRY = 0  # pair_list=True now always takes the pair list
    rows = []
    print("| B, K, D | pairs P | B^2 / P | Gram ms | pair list ms | Gram / list |")
    print("|---|---|---|---|---|---|")
    for shape in args.shapes:
        b, k, d = (int(v) for v in shape.split(","))
        r = measure(b, k, d, args.repeats)
        rows.append(r)
        ratio = b * b / max(r["pairs"], 1)
        print(
            f"| {b}, {k}, {d} | {r['pairs']} | {ratio:.0f} | {r['gram_ms']:.3f} | "
            f"{r['pairs_ms']:.3f} | {r['gram_ms'] / r['pairs_ms']:.2f}x |",
            flush=True,
        )
    print("\n| MR2Loss step B, K, D | fused Gram ms | pair list ms | Gram / list |")
    print("|---|---|---|---|")
    loss_rows = []
    for b, k, d in LOSS_SHAPES:
        r = measure_loss(b, k, d, args.repeats)
        loss_rows.append(r)
        print(
            f"| {b}, {k}, {d} | {r['gram_ms']:.3f} | {r['pairs_ms']:.3f} | "
            f"{r['gram_ms'] / r['pairs_ms']:.2f}x |",
            flush=True,
        )
    out = args.out or Path(__file__).parent / "results" / "representation_speed_cpu.json"
    payload = {"meta": describe("cpu"), "rows": rows, "loss_rows": loss_rows}
    print(f"\nraw numbers: {save(payload, out)}")


if __name__ == "__main__":
    main()
