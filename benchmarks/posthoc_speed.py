"""Time of fitting post-hoc class offsets (``mr2.posthoc.ClassOffsets``) on one CPU core, for
each objective, at the issue's targets: K = 100 on 10,000 samples (under 2 s) and K = 1000 on
50,000 (under 20 s). Logits are synthetic float32 (as runs keep them): a class signal of
random strength plus unit noise. Settings: each objective unconstrained, and the worst
class at the zero offsets' own accuracy (no slack).

    python benchmarks/posthoc_speed.py [--repeats 3] [--out FILE] [--tiny]
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
from mr2.posthoc import ClassOffsets

CASES = [(100, 10_000, 2.0), (1000, 50_000, 20.0)]  # K, N, target seconds
SETTINGS = [("worst", {}), ("hard", {}), ("tail", {}), ("worst", {"min_overall": "own"})]


def logits(k: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % k
    z = torch.randn(n, k, generator=g)
    z[torch.arange(n), y] += (torch.rand(k, generator=g) * 4)[y]
    return z, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "posthoc_speed_cpu.json")
    )
    ap.add_argument("--tiny", action="store_true", help="small shapes (a test of the script)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = [(10, 500, 2.0)] if args.tiny else CASES
    rows = []
    for k, n, target in cases:
        z, y = logits(k, n)
        own = float((z.argmax(1) == y).double().mean())
        for objective, setting in SETTINGS:
            options = {k: own if v == "own" else v for k, v in setting.items()}
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fitted = ClassOffsets(objective, **options).fit(z, y)
                times.append(time.perf_counter() - start)
            assert fitted.before is not None and fitted.after is not None
            row = {
                "K": k, "N": n, "objective": objective, "options": options,
                "median_s": statistics.median(times), "target_s": target,
                "worst_before": fitted.before.worst, "worst_after": fitted.after.worst,
                "overall_before": fitted.before.overall, "overall_after": fitted.after.overall,
            }  # fmt: skip
            rows.append(row)
            print(
                f"K={k:5d} N={n:6d} {objective:5s} {options or ''}: {row['median_s']:.2f} s "
                f"(target {target:g} s){'' if row['median_s'] < target else '  ABOVE TARGET'}"
            )
    save({"environment": describe("cpu"), "results": rows}, Path(args.out))


if __name__ == "__main__":
    main()
