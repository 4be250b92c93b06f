"""The trainer examples run (tiny, CPU): Lightning and Accelerate under DDP equal one
process on MR²'s margins, Lightning resumes its margins from a checkpoint, timm with
mixup / cutmix; each ends with record_run, and mr2 report compares their runs."""

import json
import os
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


def margins(folder):
    return json.loads((folder / "margins.json").read_text())["margins"]


def test_lightning_ddp_and_resume_equal_one_process(tmp_path):
    script = str(EXAMPLES / "lightning_mr2.py")
    run([script, "--out", "one"], tmp_path)
    run([script, "--out", "ddp", "--devices", "2"], tmp_path)
    assert margins(tmp_path / "ddp") == pytest.approx(margins(tmp_path / "one"), rel=1e-5)
    run([script, "--out", "half", "--epochs", "1"], tmp_path)
    run([script, "--out", "resumed", "--epochs", "2", "--resume", "half/last.ckpt"], tmp_path)
    assert margins(tmp_path / "resumed") == margins(tmp_path / "one")  # the margins restored
    assert margins(tmp_path / "half") != margins(tmp_path / "one")
    assert (tmp_path / "one" / "run" / "result.json").is_file()
    metrics = (tmp_path / "one" / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "val/worst_class" in metrics and "val/hard" in metrics


def test_accelerate_under_torchrun_equals_one_process(tmp_path):
    script = str(EXAMPLES / "accelerate_mr2.py")
    run([script, "--out", "one"], tmp_path)
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run([*torchrun, script, "--out", "ddp"], tmp_path)
    assert margins(tmp_path / "ddp") == pytest.approx(margins(tmp_path / "one"), rel=1e-5)


def test_timm_mixup_example_and_the_report_of_all_examples(tmp_path, capsys):
    run([str(EXAMPLES / "timm_mr2.py"), "--out", "timm"], tmp_path)
    result = json.loads((tmp_path / "timm" / "run" / "result.json").read_text())
    assert result["method"] == "mr2" and len(margins(tmp_path / "timm")) == 5
    for seed in (0, 1):
        run([str(EXAMPLES / "timm_mr2.py"), "--out", f"s{seed}", "--seed", str(seed)], tmp_path)
    argv = ["report", str(tmp_path / "s0" / "run"), str(tmp_path / "s1" / "run")]
    assert cli.main([*argv, "--out", str(tmp_path / "rep"), "--reference", "mr2"]) == 0
    assert "| mr2 | 2 |" in capsys.readouterr().out
