"""MR²'s statistics step as Triton kernels (``mr2.losses.mr2.triton_step``, what a GPU runs),
checked on the CPU in Triton's interpreter against the PyTorch path, and its count of
operations per step (issue 22: at most 60 at (128, 100, 640), kernel launches included)."""

import os
import subprocess
import sys
from pathlib import Path

from mr2.losses.mr2 import triton_step as mr2_triton

HERE = Path(__file__).resolve().parent


def test_kernels_match_the_pytorch_path_and_a_step_is_at_most_60_operations():
    assert mr2_triton.kernels is not None, (
        "Triton is missing: it comes with torch's CUDA builds (make venv installs one)"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(HERE)}
    done = subprocess.run(
        [sys.executable, str(HERE / "triton_worker.py")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
    ops = int(next(line for line in done.stdout.splitlines() if line.startswith("ops")).split()[1])
    assert ops <= 60, done.stdout
    assert "['scatter', 'finish']" in done.stdout  # the step really ran the kernels


def test_mr2_triton_0_switches_the_kernels_off(monkeypatch):
    """Where the kernels would run (here: the interpreter standing in for a GPU),
    ``MR2_TRITON=0`` takes the PyTorch path; a statistic too big for one program does too."""
    import torch

    monkeypatch.setattr(mr2_triton, "INTERPRETED", True)
    sums, f = torch.zeros(10, 2 + 16, dtype=torch.float64), torch.zeros(4, 16)
    monkeypatch.setenv("MR2_TRITON", "1")
    assert mr2_triton.usable(sums, f)
    big = torch.zeros(1000, 2 + 2048, dtype=torch.float64)
    assert not mr2_triton.usable(big, torch.zeros(4, 2048))
    monkeypatch.setenv("MR2_TRITON", "0")
    assert not mr2_triton.usable(sums, f)
