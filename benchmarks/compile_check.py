"""``torch.compile`` of MR2Loss: the compiled loss must give the eager loss's values,
gradients and running statistics, step after step; its time per step, and on CUDA the
kernels one step launches (the compiled step's count is the one a bound on launches can hold:
eager MR² dispatches 98 ATen operations at (128, 100, 640), ``op_count.py``).

Both copies start from the same state and see the same batches (a linear head on features
that require grad, as in training). ``validate=False`` (no host sync) is the form to
compile; the validated form is timed too.

    python benchmarks/compile_check.py [--device cuda] [--shape 128 100 640] [--steps 30]
        [--backend inductor] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe, save
from mr2 import MR2Loss


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def launches(step, device: torch.device) -> int | None:
    """What one call of ``step`` runs on a CUDA device (kernels, copies and sets, counted
    by torch.profiler): the launches a step costs, eager or compiled alike (ATen operations
    do not count a compiled step's fused kernels). None on other devices."""
    if device.type != "cuda":
        return None
    activities = [torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        step()
        sync(device)
    return sum(e.device_type == torch.autograd.DeviceType.CUDA for e in prof.events())


def compare(validate: bool, args) -> dict:
    device = torch.device(args.device)
    b, k, d = args.shape
    torch.manual_seed(0)
    head = nn.Linear(d, k).to(device)
    eager = MR2Loss(k, validate=validate, rep_temperature="auto").to(device)
    compiled_module = copy.deepcopy(eager)
    compiled = torch.compile(compiled_module, backend=args.backend)
    worst = {"loss": 0.0, "grad": 0.0, "margins": 0.0}
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for step in range(args.steps):
        feats = (torch.randn(b, d, device=device) + 1).relu().requires_grad_(True)
        y = torch.randint(0, k, (b,), device=device)
        out = {}
        for name, fn in (("eager", eager), ("compiled", compiled)):
            f = feats.detach().clone().requires_grad_(True)
            sync(device)
            start = time.perf_counter()
            loss = fn(head(f), f, y)
            loss.backward()
            sync(device)
            if step >= 3:  # the first steps compile
                times[name].append(time.perf_counter() - start)
            out[name] = (loss.detach(), f.grad)
        worst["loss"] = max(worst["loss"], float((out["eager"][0] - out["compiled"][0]).abs()))
        worst["grad"] = max(
            worst["grad"], float((out["eager"][1] - out["compiled"][1]).abs().max())
        )
        gap = (eager.margins() - compiled_module.margins()).abs().max()
        worst["margins"] = max(worst["margins"], float(gap))
    feats = (torch.randn(b, d, device=device) + 1).relu().requires_grad_(True)
    y = torch.randint(0, k, (b,), device=device)
    counts = {
        name: launches(lambda fn=fn: fn(head(feats), feats, y).backward(), device)
        for name, fn in (("eager", eager), ("compiled", compiled))
    }
    eager_ms = 1e3 * statistics.median(times["eager"])
    compiled_ms = 1e3 * statistics.median(times["compiled"])
    ok = all(v <= args.tol for v in worst.values())
    return {
        "validate": validate,
        "max_abs_diff": worst,
        "agrees": ok,
        "eager_ms": eager_ms,
        "compiled_ms": compiled_ms,
        "speedup": eager_ms / compiled_ms,
        "launches": counts,  # per step, CUDA only
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shape", nargs=3, type=int, default=[128, 100, 640], metavar=("B", "K", "D"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.steps < 5:
        ap.error("--steps must be >= 5 (the first 3 compile)")
    rows = [compare(v, args) for v in (False, True)]
    print(
        "| validate | eager ms | compiled ms | speed-up | launches / step (eager, compiled) "
        "| max abs diff (loss, grad, margins) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        diff = ", ".join(f"{v:.1e}" for v in r["max_abs_diff"].values())
        counts = ", ".join("n/a" if n is None else str(n) for n in r["launches"].values())
        print(
            f"| {r['validate']} | {r['eager_ms']:.2f} | {r['compiled_ms']:.2f} | "
            f"{r['speedup']:.2f}x | {counts} | {diff} |"
        )
    out = args.out or Path(__file__).parent / "results" / f"compile_{args.device}.json"
    settings = {"shape": args.shape, "steps": args.steps, "backend": args.backend}
    save({"meta": describe(args.device), "settings": settings, "rows": rows}, out)
    if not all(r["agrees"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
