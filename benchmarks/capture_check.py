"""MR2Loss + head against cross-entropy + head, eager, compiled and captured in a CUDA graph.

For each (B, K, D) of ``loss_speed.py``, one training step (linear head + loss, forward +
backward) of cross-entropy and of ``MR2Loss(validate=False)`` runs three ways:

- eager;
- compiled: ``torch.compile(loss, fullgraph=True)`` (``mode="reduce-overhead"`` on CUDA);
- captured (CUDA only): the whole step recorded once in a ``torch.cuda.CUDAGraph`` and
  replayed, its inputs copied into static tensors first.

Checks, each reported: the captured and compiled MR² steps give eager's losses, gradients
and running statistics over the same batches; an eager MR² step runs under
``torch.cuda.set_sync_debug_mode("error")`` (no host sync). Times: the median over
``--repeats`` steps after warm-up, interleaved round-robin. Targets (issue 22, one H100):
MR² / CE within 1.5x eager and 1.2x captured or compiled.

    python benchmarks/capture_check.py [--device cuda] [--repeats 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe, save
from loss_speed import SHAPES
from mr2 import MR2Loss

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(loss_fn, head: nn.Module, features: bool = True) -> Step:
    """(features, labels) -> (loss, feature gradient) of one step (the head's gradients are
    computed too); ``features``: the loss takes (logits, features, labels)."""

    def step(feats: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = feats.detach().requires_grad_(True)
        z = head(f)
        loss = loss_fn(z, f, y) if features else loss_fn(z, y)
        grads = torch.autograd.grad(loss, [f, *head.parameters()])
        return loss.detach(), grads[0]

    return step


def captured(step: Step, feats: torch.Tensor, y: torch.Tensor) -> Step:
    """``step`` recorded in a CUDA graph (after warm-up on a side stream); each call copies
    its inputs into the static ones and replays."""
    static_f, static_y = feats.clone(), y.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(static_f, static_y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step(static_f, static_y)

    def replay(f: torch.Tensor, labels: torch.Tensor):
        static_f.copy_(f)
        static_y.copy_(labels)
        graph.replay()
        return out

    return replay


def batches(shape, device, n: int):
    b, k, d = shape
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        f = (torch.randn(b, d, generator=g) + 1).relu()
        yield f.to(device), torch.randint(0, k, (b,), generator=g).to(device)


def relative_gap(got: torch.Tensor, want: torch.Tensor) -> float:
    """Max abs difference over the reference's largest magnitude (at least 1): the running
    sums reach thousands (squared norms), where float32 rounding alone is 1e-4 absolute."""
    return float((got - want).abs().max() / want.abs().max().clamp_min(1.0))


def agreement(shape, device, backend: str, capture: bool) -> dict:
    """Max relative differences (``relative_gap``) of the compiled / captured MR² steps from
    eager over 8 steps: losses, feature gradients and running sums."""
    _b, k, d = shape
    torch.manual_seed(0)
    head = nn.Linear(d, k).to(device)
    losses = {"eager": MR2Loss(k, validate=False).to(device)}
    losses["compiled"] = copy.deepcopy(losses["eager"])
    if capture:
        losses["captured"] = copy.deepcopy(losses["eager"])
    first = next(batches(shape, device, 1))
    for loss in losses.values():  # size the statistics before any capture
        make_step(loss, head)(*first)
    steps = {
        "eager": make_step(losses["eager"], head),
        "compiled": make_step(
            torch.compile(losses["compiled"], fullgraph=True, backend=backend), head
        ),
    }
    if capture:
        steps["captured"] = captured(make_step(losses["captured"], head), *first)
        losses["captured"].load_state_dict(losses["eager"].state_dict())  # undo the warm-up
    worst = {name: 0.0 for name in steps if name != "eager"}
    for f, y in batches(shape, device, 8):
        ref_loss, ref_grad = steps["eager"](f, y)
        for name in worst:
            loss, grad = steps[name](f, y)
            gap = max(
                relative_gap(loss, ref_loss),
                relative_gap(grad, ref_grad),
                relative_gap(losses[name].sums, losses["eager"].sums),
            )
            worst[name] = max(worst[name], gap)
    return worst


def no_sync(shape, device) -> bool | None:
    """An eager MR² step under ``set_sync_debug_mode("error")`` (CUDA only)."""
    if device.type != "cuda":
        return None
    _b, k, d = shape
    head = nn.Linear(d, k).to(device)
    step = make_step(MR2Loss(k, validate=False).to(device), head)
    f, y = next(batches(shape, device, 1))
    step(f, y)  # sizes the statistics
    step(f, y)  # the first kernel step: checked once against PyTorch (one host sync, by design)
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(f, y)
        return True
    except RuntimeError:
        return False
    finally:
        torch.cuda.set_sync_debug_mode("default")


def timings(
    shape, device, backend: str, mode: str | None, repeats: int, hand: bool
) -> dict[str, float]:
    _b, k, d = shape
    torch.manual_seed(0)
    head = nn.Linear(d, k).to(device)
    f, y = next(batches(shape, device, 1))
    steps: dict[str, Step] = {}
    for name, loss in (("ce", F.cross_entropy), ("mr2", MR2Loss(k, validate=False).to(device))):
        takes = name == "mr2"
        steps[f"{name} eager"] = make_step(loss, head, takes)
        steps[f"{name} eager"](f, y)  # sizes the statistics: the copies below start sized
        # the compiled and captured steps get their own copy of the loss (as in
        # `agreement`): two CUDA-graph mechanisms mutating one module's buffers in one
        # process faulted on an H200 (benchmarks/results/gpu_lease_h200.md)
        fn = torch.compile(copy.deepcopy(loss), fullgraph=True, backend=backend, mode=mode)
        steps[f"{name} compiled"] = make_step(fn, head, takes)
        if hand:
            steps[f"{name} captured"] = captured(make_step(copy.deepcopy(loss), head, takes), f, y)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for rep in range(repeats + 3):
        for name, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            try:
                step(f, y)
                sync(device)
            except RuntimeError as e:  # which step a CUDA fault surfaced in
                raise RuntimeError(f"{name} step at {shape}, repeat {rep}: {e}") from e
            if rep >= 3:
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shapes", nargs="+", default=[",".join(map(str, s)) for s in SHAPES])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--mode", default=None, help="torch.compile mode (CUDA: reduce-overhead)")
    ap.add_argument("--no-hand-capture", action="store_true", help="leave the captured steps out")
    ap.add_argument(
        "--keep-compiled",
        action="store_true",
        help="keep compiled graphs from one shape to the next (default: torch.compiler.reset() "
        "before each shape; two shapes in one process without it once failed on an H200)",
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    mode = args.mode or ("reduce-overhead" if cuda and args.backend == "inductor" else None)
    hand = cuda and not args.no_hand_capture
    rows = []
    for text in args.shapes:
        shape = tuple(int(x) for x in text.split(","))
        if not args.keep_compiled:
            torch.compiler.reset()
        ms = timings(shape, device, args.backend, mode, args.repeats, hand)
        worst = agreement(shape, device, args.backend, hand)
        agrees = all(v <= args.tol for v in worst.values())
        row = {"shape": shape, "ms": ms, "max_relative_diff": worst, "agrees": agrees}
        rows.append({**row, "no_sync": no_sync(shape, device)})
    print(table(rows, hand))
    out = args.out or Path(__file__).parent / "results" / f"capture_{device.type}.json"
    settings = {"backend": args.backend, "mode": mode, "keep_compiled": args.keep_compiled}
    settings["hand_capture"] = hand
    save({"meta": describe(args.device), **settings, "rows": rows}, out)
    if not all(r["agrees"] and r["no_sync"] is not False for r in rows):
        sys.exit("capture_check: a compiled or captured step disagrees with eager, or syncs")


def table(rows: list[dict], hand: bool) -> str:
    kinds = ["eager", "compiled", *(["captured"] if hand else [])]
    head = " | ".join(f"CE / MR² {k} ms" for k in kinds)
    lines = [
        f"| B, K, D | {head} | MR² / CE eager (target 1.5x) | MR² / CE best of compiled, "
        "captured (target 1.2x) | max relative diff from eager | no host sync |",
        "|---|" + "---|" * (len(kinds) + 4),
    ]
    for r in rows:
        ms = r["ms"]
        cells = " | ".join(f"{ms[f'ce {k}']:.2f} / {ms[f'mr2 {k}']:.2f}" for k in kinds)
        fast = min(ms[f"mr2 {k}"] / ms[f"ce {k}"] for k in kinds[1:])
        diff = ", ".join(f"{k} {v:.1e}" for k, v in r["max_relative_diff"].items())
        sync_cell = {None: "n/a (CPU)", True: "yes", False: "NO"}[r["no_sync"]]
        lines.append(
            f"| {', '.join(map(str, r['shape']))} | {cells} | "
            f"{ms['mr2 eager'] / ms['ce eager']:.2f}x | {fast:.2f}x | {diff} | {sync_cell} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
