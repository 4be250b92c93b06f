"""Forward+backward time and peak memory of MR2Loss vs the authors' loop vs cross-entropy.

Times: for each (B, K, D) all methods run in one process, interleaved round-robin (so drift
of a shared machine hits them alike), after warm-up; the median over ``--repeats`` steps.
Peak memory: each (method, B, K, D) in a fresh subprocess, so it is clean: on CPU the
growth of the process's peak resident set over its size after setup, on CUDA
``torch.cuda.max_memory_allocated`` above the inputs. All methods include the same linear
head (D -> K) on features that require grad, as in a real training step.

Rows: cross-entropy; "floor", the least any per-class-statistics logit margin can do (one
scatter-add of the batch by class and CE of z / gamma_y: the bound eager PyTorch sets on
MR²'s cost at small shapes); MR² with logit margins only; MR² (validate=False / True); the
authors' per-class loop.

    python benchmarks/loss_speed.py [--device cuda] [--repeats 20] [--out FILE]

Writes a markdown table to stdout and the raw numbers, machine and versions to JSON
(default ``benchmarks/results/loss_speed_<device>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from authors_loop import LoopMR2
from environment import describe, save
from mr2 import MR2Loss

SHAPES = [(128, 10, 256), (128, 100, 640), (512, 1000, 768), (1024, 1000, 2048)]
METHODS = ["cross_entropy", "floor", "mr2_logit", "mr2", "mr2_validated", "authors_loop"]


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_step(method: str, b: int, k: int, d: int, device: str):
    torch.manual_seed(0)
    dev = torch.device(device)
    head = nn.Linear(d, k).to(dev)
    feats = torch.randn(b, d, device=dev).requires_grad_(True)
    targets = torch.randint(0, k, (b,), device=dev)
    if method == "cross_entropy":
        ce = nn.CrossEntropyLoss()

        def loss_fn(z, _f, y):
            return ce(z, y)
    elif method == "floor":  # the least a per-class-statistics logit margin can do
        loss_fn = floor_loss(k, d, dev)
    elif method == "mr2_logit":  # logit margins alone (lambda_rep = 0), validate=False
        loss_fn = MR2Loss(k, lambda_rep=0.0, validate=False).to(dev)
    elif method.startswith("mr2"):  # validate=True adds one fused check (a host sync)
        loss_fn = MR2Loss(k, validate=method == "mr2_validated").to(dev)
    else:
        loss_fn = LoopMR2(k).to(dev)

    def step() -> None:
        head.zero_grad(set_to_none=True)
        feats.grad = None
        loss_fn(head(feats), feats, targets).backward()

    return step


def floor_loss(k: int, d: int, dev: torch.device):
    """Cross-entropy of logits / gamma_y with gamma read from per-class sums that one
    scatter-add of [1, f] updates: fewer operations than any MR² implementation needs (no
    deviations, EMA, margins, validation or representation term), so MR² cannot be faster
    than this row in eager PyTorch."""
    sums = torch.zeros(k, d + 1, device=dev)
    gamma = torch.ones(k, device=dev)

    def loss_fn(z, f, y):
        with torch.no_grad():
            sums.index_add_(0, y, torch.cat([f.new_ones(len(f), 1), f.detach()], dim=1))
        return nn.functional.cross_entropy(z / gamma[y].unsqueeze(1), y)

    return loss_fn


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_all(b: int, k: int, d: int, device: str, repeats: int) -> dict[str, list[float]]:
    steps = {m: make_step(m, b, k, d, device) for m in METHODS}
    for step in steps.values():  # warm-up (also sizes lazy buffers)
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(repeats):
        for m, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            times[m].append(time.perf_counter() - t0)
    return times


def peak_memory(method: str, b: int, k: int, d: int, device: str) -> float:
    """Extra peak memory (MiB) of three steps over the state after one warm-up step."""
    step = make_step(method, b, k, d, device)
    step()
    sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
    for _ in range(3):
        step()
    sync(device)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return max(peak, 0) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--shapes", nargs="+", default=[",".join(map(str, s)) for s in SHAPES], metavar="B,K,D"
    )
    ap.add_argument("--one", nargs=4, metavar=("METHOD", "B", "K", "D"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        m, b, k, d = args.one
        print(json.dumps(peak_memory(m, int(b), int(k), int(d), args.device)))
        return
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]
    rows = []
    for b, k, d in shapes:
        times = time_all(b, k, d, args.device, args.repeats)
        for m in METHODS:
            cmd = [
                sys.executable,
                __file__,
                "--device",
                args.device,
                "--one",
                m,
                str(b),
                str(k),
                str(d),
            ]
            if args.device.startswith("cuda"):  # the CUDA allocator's peak is clean in-process
                out = json.dumps(peak_memory(m, b, k, d, args.device))
            else:
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(
                {
                    "method": m,
                    "B": b,
                    "K": k,
                    "D": d,
                    "median_ms": 1e3 * statistics.median(times[m]),
                    "min_ms": 1e3 * min(times[m]),
                    "repeats": args.repeats,
                    "peak_mb": json.loads(out.strip().splitlines()[-1]),
                }
            )
            print(f"# {rows[-1]}", file=sys.stderr)
    print(
        "| B, K, D | CE + head ms | floor ms | MR² logit only ms | MR2Loss + head ms "
        "(validate=False / True) | loop + head ms | floor / CE | MR² logit / CE | MR2 / CE "
        "| loop / MR2 | peak MB (CE / MR2 / loop) |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for b, k, d in shapes:
        r = {x["method"]: x for x in rows if (x["B"], x["K"], x["D"]) == (b, k, d)}
        ce, fl, lo, mr, mrv, lp = (r[m]["median_ms"] for m in METHODS)
        mem = " / ".join(f"{r[m]['peak_mb']:.0f}" for m in ("cross_entropy", "mr2", "authors_loop"))
        print(
            f"| {b}, {k}, {d} | {ce:.2f} | {fl:.2f} | {lo:.2f} | {mr:.2f} / {mrv:.2f} | {lp:.1f} "
            f"| {fl / ce:.2f}x | {lo / ce:.2f}x | {mr / ce:.2f}x / {mrv / ce:.2f}x "
            f"| {lp / mr:.1f}x | {mem} |"
        )
    out = args.out or Path(__file__).parent / "results" / f"loss_speed_{args.device}.json"
    meta = describe(args.device)
    print(f"\nraw numbers: {save({'meta': meta, 'rows': rows}, out)}")


if __name__ == "__main__":
    main()
