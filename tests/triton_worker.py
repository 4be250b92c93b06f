"""Run by tests/test_mr2_triton.py in a process with TRITON_INTERPRET=1: MR2Loss's training
steps with the statistics from the Triton kernels (``MR2_TRITON=1``) against the PyTorch
path, over several steps and settings; then the operations of one step on that path at
(128, 100, 640), kernel launches counted as one each. Prints "ops N" and "ok", or raises.

``python tests/triton_worker.py --cuda`` (on a GPU, no interpreter; ``benchmarks/gpu_lease.sh``
runs it): the same checks with the kernels compiled for the GPU against the PyTorch path on
the CPU (tolerances widened for the two devices' float32 arithmetic); no operation count."""

import copy
import os
import sys
import warnings

import torch

from mr2 import MR2Loss
from mr2.losses.mr2 import triton_step as mr2_triton
from test_mr2_step import step_ops

CUDA = "--cuda" in sys.argv  # kernels on the GPU, the reference on the CPU
TOL = {"rtol": 1e-4, "atol": 1e-5} if CUDA else {"rtol": 2e-5, "atol": 1e-6}


def run(kernels: bool, loss_fn: MR2Loss, batches):
    os.environ["MR2_TRITON"] = "1" if kernels else "0"
    device = "cuda" if kernels and CUDA else "cpu"
    loss_fn.to(device)
    used = []
    mr2_triton.LAUNCH_HOOKS.append(used.append)
    out = []
    try:
        for z, f, y in batches:
            zz = z.to(device, copy=True).requires_grad_(True)  # fresh leaves each run
            ff = f.to(device, copy=True).requires_grad_(True)
            loss = loss_fn(zz, ff, y.to(device))
            loss.backward()
            got = (loss.detach(), zz.grad, ff.grad, loss_fn.sums.clone(), loss_fn.margins())
            out.append(tuple(None if t is None else t.cpu() for t in got))
    finally:
        mr2_triton.LAUNCH_HOOKS.remove(used.append)
    return out, used


def batches(k, d, n=4, b=24, scale=1.0, seed=0, classes=None, transposed=False):
    """``transposed``: column-major logits (as a head computing (W f^T)^T gives) and labels
    with a stride (every other one of twice as many)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        f = (torch.randn(b, d, generator=g) + 2.0).relu() * scale
        y = torch.randint(0, classes or k, (2 * b if transposed else b,), generator=g)
        y = y[::2] if transposed else y
        z = torch.randn(k, b, generator=g).t() if transposed else torch.randn(b, k, generator=g)
        yield z, f, y


def check(options, k=7, d=37, **batch_options):
    base = MR2Loss(k, validate=False, **options)
    data = list(batches(k, d, **batch_options))
    torch_out, none = run(False, copy.deepcopy(base), data)
    kernel_out, launches = run(True, copy.deepcopy(base), data)
    assert not none, none
    assert launches == ["scatter", "finish"] * (len(data) - 1), launches  # step 1 sizes the sums
    for step, (a, b) in enumerate(zip(torch_out, kernel_out, strict=True)):
        for name, x, y in zip(
            ("loss", "d logits", "d features", "sums", "margins"), a, b, strict=True
        ):
            torch.testing.assert_close(y, x, **TOL, msg=f"{options} step {step}: {name}")


def faulty_kernels_are_caught():
    """A kernel fault (here: s_bar doubled) is caught by the first step's check: that step
    gives the PyTorch path's numbers, warns, and the kernels stay off for the loss."""
    real = mr2_triton.step

    def faulty(*args, **kwargs):
        out = real(*args, **kwargs)
        out[2].mul_(2.0)
        return out

    base, data = MR2Loss(7, validate=False), list(batches(7, 37))
    torch_out, _ = run(False, copy.deepcopy(base), data)
    mr2_triton.step = faulty
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            faulty_out, launches = run(True, copy.deepcopy(base), data)
    finally:
        mr2_triton.step = real
    assert any("disagree with the PyTorch path" in str(w.message) for w in caught), caught
    assert launches == ["scatter", "finish"], launches  # the checked step only
    for a, b in zip(torch_out, faulty_out, strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(y, x, **TOL)


def main() -> None:
    check({})
    check({"rep_temperature": 4.0, "c_bar": 1.5, "ema_decay": 0.5})
    check({"rep_reduction": "class", "lambda_rep": 0.1}, k=130, d=300, b=40)  # several blocks
    check({"logit_margins": False})
    check({"lambda_rep": 0.0})  # no representation term: no s_bar to check
    check({}, classes=3)  # classes never seen keep c_bar, their sums stay zero
    check({}, k=9, transposed=True)  # logits and labels in any memory layout
    # a batch whose squared norms overflow float32 is skipped: the state does not move
    loss_fn = MR2Loss(5, validate=False)
    first, huge = list(batches(5, 8, n=1)), list(batches(5, 8, n=1, scale=1e20, seed=1))
    run(False, loss_fn, first)
    before = loss_fn.sums.clone()
    run(True, loss_fn, huge)
    assert torch.equal(loss_fn.sums.cpu(), before), "an overflowing batch changed the statistics"
    faulty_kernels_are_caught()
    if CUDA:
        print("ok")
        return
    os.environ["MR2_TRITON"] = "1"
    launches = []
    mr2_triton.LAUNCH_HOOKS.append(launches.append)
    ops = step_ops(MR2Loss(100, validate=False))
    print("ops", len(ops) + len(launches) // 3, "launches", launches[-2:])  # 3 steps, 1 counted
    print("ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
