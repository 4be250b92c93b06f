"""Wall time of one comparison run sequentially (``local``) and on a process pool.

The comparison: scikit-learn's digits, MLP (configs/digits_cpu.toml), methods ce and mr2,
seeds 0 and 1, a 2-point grid over MR²'s lambda_rep: 2 tuning runs + 4 runs. Each
executor trains it from scratch into a temporary folder; ``train.threads`` is left unset,
as a user would (local: torch's default threads for each run in turn; pool: the cores
divided between the workers). The test numbers of the two are compared as well (on CPU
with unset threads they may differ in the last bits; the test suite checks equality with
``train.threads`` fixed).

    python benchmarks/executor_speed.py [--jobs 2] [--out FILE]

Writes a line per executor to stdout and the numbers, machine, versions and commit to JSON
(default ``benchmarks/results/executor_speed_cpu.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe, save
from mr2.engine import config
from mr2.engine.compare import run_compare

ROOT = Path(__file__).resolve().parents[1]


def comparison(executor: str, jobs: int):
    cfg = config.load(ROOT / "configs" / "digits_cpu.toml")
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0, 1]
    cfg.compare.grid = {"mr2": {"lambda_rep": [0.0, 0.1]}}
    cfg.compare.executor, cfg.compare.jobs = executor, jobs
    return cfg


def timed(executor: str, jobs: int) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_compare(comparison(executor, jobs), tmp, show_progress=False, log=lambda *_: None)
        seconds = time.perf_counter() - start
        tests = {
            str(p.parent.relative_to(tmp)): json.loads(p.read_text())["test"]["overall"]
            for p in Path(tmp).rglob("result.json")
        }
    return seconds, tests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "executor_speed_cpu.json")
    )
    args = ap.parse_args()
    rows = []
    for executor, jobs in (("local", 1), ("pool", args.jobs)):
        seconds, tests = timed(executor, jobs)
        rows.append({"executor": executor, "jobs": jobs, "wall_s": seconds, "test_overall": tests})
        print(f"{executor:5s} jobs {jobs}: {seconds:.1f} s for {len(tests)} runs", flush=True)
    same = rows[0]["test_overall"] == rows[1]["test_overall"]
    print(f"pool / local: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x; same test numbers: {same}")
    meta = {**describe("cpu"), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    save({"meta": meta, "rows": rows, "same_test_numbers": same}, Path(args.out))


if __name__ == "__main__":
    main()
