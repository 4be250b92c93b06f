"""The trainer examples run (tiny, CPU): Lightning and Accelerate learn (cross-entropy and
MR² both well above chance on held-out data), under DDP equal one process on MR²'s margins,
Lightning resumes its margins from a checkpoint, timm with mixup / cutmix; each ends with
record_run, and mr2 report compares their runs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mr2 import cli

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(args, cwd):
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def learned(stdout):
    """Both losses' printed test accuracies: well above chance (0.2) on 200 held-out images."""
    found = dict(re.findall(r"^(\w+): test accuracy ([\d.]+)", stdout, re.M))
    assert set(found) == {"ce", "mr2"}, stdout
    assert all(float(v) > 0.5 for v in found.values()), found


def margins(folder):
    return json.loads((folder / "mr2" / "margins.json").read_text())["margins"]


def test_lightning_ddp_and_resume_equal_one_process(tmp_path):
    script = str(EXAMPLES / "lightning_mr2.py")
    learned(run([script, "--out", "both"], tmp_path))
    small = ["--losses", "mr2", "--train-size", "64"]  # DDP and resume on 2 x 4 steps
    run([script, "--out", "one", "--epochs", "2", *small], tmp_path)
    run([script, "--out", "ddp", "--epochs", "2", "--devices", "2", *small], tmp_path)
    assert margins(tmp_path / "ddp") == pytest.approx(margins(tmp_path / "one"), rel=1e-5)
    run([script, "--out", "half", "--epochs", "1", *small], tmp_path)
    resume = ["--resume", "half/mr2/last.ckpt"]
    run([script, "--out", "resumed", "--epochs", "2", *small, *resume], tmp_path)
    assert margins(tmp_path / "resumed") == margins(tmp_path / "one")  # the margins restored
    assert margins(tmp_path / "half") != margins(tmp_path / "one")
    assert (tmp_path / "both" / "ce" / "run" / "result.json").is_file()
    logs = tmp_path / "both" / "mr2" / "lightning_logs"
    metrics = (logs / "version_0" / "metrics.csv").read_text()
    assert "val/worst_class" in metrics and "val/hard" in metrics


def test_accelerate_under_torchrun_equals_one_process(tmp_path):
    script = str(EXAMPLES / "accelerate_mr2.py")
    learned(run([script, "--out", "both"], tmp_path))
    small = ["--losses", "mr2", "--train-size", "64", "--epochs", "2"]  # DDP on 8 steps
    run([script, "--out", "one", *small], tmp_path)
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run([*torchrun, script, "--out", "ddp", *small], tmp_path)
    assert margins(tmp_path / "ddp") == pytest.approx(margins(tmp_path / "one"), rel=1e-5)


def test_timm_mixup_example_and_the_report_of_all_examples(tmp_path, capsys):
    run([str(EXAMPLES / "timm_mr2.py"), "--out", "timm"], tmp_path)
    result = json.loads((tmp_path / "timm" / "run" / "result.json").read_text())
    assert result["method"] == "mr2"
    assert len(json.loads((tmp_path / "timm" / "margins.json").read_text())["margins"]) == 5
    for seed in (0, 1):
        run([str(EXAMPLES / "timm_mr2.py"), "--out", f"s{seed}", "--seed", str(seed)], tmp_path)
    argv = ["report", str(tmp_path / "s0" / "run"), str(tmp_path / "s1" / "run")]
    assert cli.main([*argv, "--out", str(tmp_path / "rep"), "--reference", "mr2"]) == 0
    assert "| mr2 | 2 |" in capsys.readouterr().out
