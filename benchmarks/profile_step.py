"""Where the time of one training step goes: MR2Loss + head against cross-entropy + head, by
operator (``torch.profiler``), at the loss benchmark's small shapes.

    python benchmarks/profile_step.py [--shapes 128,10,256 128,100,640] [--steps 200]

Writes a markdown report (per shape: step times, the number of operator calls per step, and
the operators that take the most self time) to stdout and to
``benchmarks/results/profile_step_<device>.md`` with the machine, versions and commit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe
from mr2 import MR2Loss

RESULTS = Path(__file__).resolve().parent / "results"


def make_step(method: str, b: int, k: int, d: int, compiled: bool = False, **options):
    torch.manual_seed(0)
    head = nn.Linear(d, k)
    feats = torch.randn(b, d).requires_grad_(True)
    targets = torch.randint(0, k, (b,))
    ce = nn.CrossEntropyLoss()
    mr2 = MR2Loss(k, **{"validate": False, **options})
    if compiled:
        mr2 = torch.compile(mr2)

    def step() -> None:
        head.zero_grad(set_to_none=True)
        feats.grad = None
        z = head(feats)
        loss = ce(z, targets) if method == "cross_entropy" else mr2(z, feats, targets)
        loss.backward()

    return step


def median_ms(step, steps: int) -> float:
    for _ in range(10):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


def op_table(step, steps: int, top: int) -> tuple[int, str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    calls = sum(e.count for e in events if e.key.startswith("aten::")) // steps
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    lines = ["| operator | calls / step | self µs / step |", "|---|---|---|"]
    for e in rows:
        lines.append(f"| `{e.key}` | {e.count / steps:.0f} | {e.self_cpu_time_total / steps:.1f} |")
    return calls, "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", nargs="+", default=["128,10,256", "128,100,640"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--out", type=Path, default=RESULTS / "profile_step_cpu.md")
    args = ap.parse_args()
    meta = describe("cpu")
    parts = [
        "# One training step by operator: MR2Loss + head vs cross-entropy + head (CPU)",
        "",
        f"Machine: {meta['cpu']}, {meta['cpus']} CPUs, {meta['threads']} threads; torch "
        f"{meta['torch']}; commit {meta['commit']}; median of {args.steps} steps after warm-up.",
    ]
    variants = {
        "cross_entropy": {},
        "mr2 (validate=False, lambda_rep 0.03)": {},
        "mr2 validate=True (pair list from K = 50)": {"validate": True},
        "mr2 logit margins only (lambda_rep 0)": {"lambda_rep": 0.0},
        "mr2, torch.compile(MR2Loss) (one graph)": {"compiled": True},
    }
    for shape in args.shapes:
        b, k, d = (int(v) for v in shape.split(","))
        parts += ["", f"## B = {b}, K = {k}, D = {d}", ""]
        parts += ["| variant | median ms | aten calls / step |", "|---|---|---|"]
        tables = []
        for name, options in variants.items():
            method = "cross_entropy" if name == "cross_entropy" else "mr2"
            step = make_step(method, b, k, d, **options)
            ms = median_ms(step, args.steps)
            calls, table = op_table(step, max(args.steps // 4, 10), args.top)
            parts.append(f"| {name} | {ms:.3f} | {calls} |")
            tables.append((name, table))
        for name, table in tables:
            parts += ["", f"Top operators by self time, {name}:", "", table]
    text = "\n".join(parts) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
