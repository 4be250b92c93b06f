"""ATen operations one training step dispatches, for every loss in the registry.

On a GPU a small loss step is launch-bound, and on the CPU the number of ATen operations a
step dispatches is a faithful proxy for its kernel launches. Counted with a
``TorchDispatchMode`` (below autograd: forward and backward, views included) for a linear
head (D -> K) plus the loss, forward + backward, after two warm-up steps, every loss with
``validate=False`` (no host sync). "kernels" leaves out the operations that launch nothing
(views and metadata: ``t``, ``view``, ``detach``, ``select``, ...). The row ``ce (torch)``
is ``F.cross_entropy``, the floor any loss is measured against.

MR² runs the same PyTorch operations on every device but one: on the CPU with K >= 50 its
representation term comes from the list of same-class pairs (``mr2.representation``),
which reads their number; an accelerator takes the Gram. The column "accelerator" counts
the Gram's step (the pair list switched off), the one the bound of issues 22 and 35 is about.

    python benchmarks/op_count.py [--shape 128,100,640] [--out FILE]

Writes a markdown table to stdout and to ``benchmarks/results/op_count_cpu.md`` (with the
machine, versions and commit), and the raw counts beside it as JSON.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe, save
from mr2 import losses, representation
from mr2.losses.mr2.terms import MarginTerms

RESULTS = Path(__file__).resolve().parent / "results"
NO_KERNEL = {
    "t", "view", "detach", "select", "slice", "unsqueeze", "squeeze", "diagonal", "expand",
    "permute", "transpose", "as_strided", "_unsafe_view", "alias", "reshape",
}  # fmt: skip
TARGET_MR2 = 60  # the bound of issues 22 and 35 at (128, 100, 640)


class OpCounter(TorchDispatchMode):
    """Records the name of every ATen operation dispatched while active, and the stage
    (``stage``, set by ``staged``) it was dispatched in."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.stages: list[str] = []
        self.stage = "head and autograd"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        self.stages.append(self.stage)
        return func(*args, **(kwargs or {}))


def staged(counter: OpCounter, stage: str, fn: Callable) -> Callable:
    """``fn`` with ``counter.stage`` set to ``stage`` while it runs (then restored)."""

    def wrapped(*args, **kwargs):
        counter.stage, before = stage, counter.stage
        try:
            return fn(*args, **kwargs)
        finally:
            counter.stage = before

    return wrapped


def make_step(name: str, b: int, k: int, d: int) -> Callable[[], None]:
    """One training step of a linear head and loss ``name`` (or "ce (torch)")."""
    torch.manual_seed(0)
    head = nn.Linear(d, k)
    feats = torch.randn(b, d).requires_grad_(True)
    targets = torch.randint(0, k, (b,))
    loss_fn = None if name == "ce (torch)" else losses.create(name, num_classes=k, validate=False)

    def step() -> None:
        head.zero_grad(set_to_none=True)
        feats.grad = None
        z = head(feats)
        loss = F.cross_entropy(z, targets) if loss_fn is None else loss_fn(z, feats, targets)
        loss.backward()

    step.loss_fn = loss_fn  # type: ignore[attr-defined]
    return step


def count(step: Callable[[], None], counter: OpCounter | None = None) -> list[str]:
    """The operations of one step, after two warm-up steps (statistics sized, caches full),
    recorded by ``counter`` (a fresh one if None)."""
    for _ in range(2):
        step()
    with counter or OpCounter() as active:
        step()
    return active.ops


@contextlib.contextmanager
def gram_path() -> Iterator[None]:
    """MR²'s pair list switched off: the step an accelerator runs."""
    listed_from, representation.LIST_FROM_BATCH = representation.LIST_FROM_BATCH, sys.maxsize
    try:
        yield
    finally:
        representation.LIST_FROM_BATCH = listed_from


def mr2_stages(shape) -> collections.Counter:
    """MR²'s step (Gram path) by stage: its statistics step (EMA update, margins, s_bar:
    ``_statistics``), its two terms' forward and analytic backward (``MarginTerms``), and
    the rest (the head's forward and backward, autograd)."""
    backward = MarginTerms.backward
    counter = OpCounter()
    step = make_step("mr2", *shape)
    step.loss_fn._statistics = staged(counter, "statistics step", step.loss_fn._statistics)
    step.loss_fn.forward = staged(counter, "terms' forward", step.loss_fn.forward)
    MarginTerms.backward = staticmethod(staged(counter, "terms' backward", backward))
    try:
        with gram_path():
            count(step, counter)
        return collections.Counter(counter.stages)
    finally:
        MarginTerms.backward = staticmethod(backward)


def gram_count(name: str, shape) -> list[str]:
    """A step of loss ``name`` with MR²'s pair list switched off: what an accelerator runs."""
    with gram_path():
        return count(make_step(name, *shape))


def table(rows: dict[str, list[str]], gpu: dict[str, list[str]], shape) -> str:
    b, k, d = shape
    lines = [
        f"| loss (B, K, D = {b}, {k}, {d}) | ATen ops / step | kernels / step | "
        "accelerator: ops (kernels) | most frequent |",
        "|---|---|---|---|---|",
    ]
    for name, ops in rows.items():
        launching = [op for op in ops if op not in NO_KERNEL]
        top = ", ".join(f"{op} {n}" for op, n in collections.Counter(launching).most_common(3))
        on_gpu = gpu.get(name)
        cell = "same"
        if on_gpu is not None:
            cell = f"{len(on_gpu)} ({len([op for op in on_gpu if op not in NO_KERNEL])})"
        lines.append(f"| {name} | {len(ops)} | {len(launching)} | {cell} | {top} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="128,100,640")
    ap.add_argument("--out", type=Path, default=RESULTS / "op_count_cpu.md")
    args = ap.parse_args()
    shape = tuple(int(x) for x in args.shape.split(","))
    assert len(shape) == 3, "--shape takes B,K,D"
    names = ["ce (torch)", *losses.available()]
    rows = {name: count(make_step(name, *shape)) for name in names}
    gpu = {n: gram_count(n, shape) for n in names if n.startswith("mr2")}
    gpu = {n: ops for n, ops in gpu.items() if ops != rows[n]}
    meta = describe("cpu")
    mr2_ops = len(gpu.get("mr2", rows["mr2"]))
    stages = mr2_stages(shape)
    by_stage = ", ".join(f"{stage} {n}" for stage, n in stages.items())
    verdict = "met" if mr2_ops <= TARGET_MR2 else "not met"
    text = (
        f"# ATen operations per training step (benchmarks/op_count.py)\n\n"
        f"torch {meta['torch']}, Python {meta['python']}, {meta['cpu']} ({meta['cpus']} CPUs), "
        f"mr2 {meta['mr2']}, commit {meta['commit']}. Linear head + loss, forward + backward, "
        f"`validate=False`, after two warm-up steps.\n\n{table(rows, gpu, shape)}\n\n"
        f"MR² (defaults) on an accelerator: {mr2_ops} operations; the bound of issues 22 and 35 is "
        f"at most {TARGET_MR2}: {verdict}. On the CPU at this shape: "
        f"{len(rows['mr2'])}.\n\nMR²'s accelerator step by stage: {by_stage}; the "
        f"whole step of `ce (torch)` is {len(rows['ce (torch)'])}.\n"
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    save(
        {"meta": meta, "shape": shape, "ops": rows, "gpu_path_ops": gpu, "mr2_stages": stages},
        args.out.with_suffix(".json"),
    )


if __name__ == "__main__":
    main()
