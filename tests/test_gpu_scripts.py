"""The GPU suite and the converged-study script, in their tiny CPU modes: every step runs,
writes its results with the machine it ran on, and the studies' reports are built."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from required_data import debian_fashion_mnist, shared

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out

ROOT = Path(__file__).resolve().parents[1]


def _run(
    script: str, env_extra: dict, timeout: int = 600, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, **env_extra}
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / script), "--tiny", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def per_class(npz: Path, n: int, out: Path) -> Path:
    """The first ``n`` images of each class of an x / y .npz (so the tiny suite evaluates in
    seconds instead of 10,000 ResNet-32 forwards)."""
    with np.load(npz) as arrays:
        x, y = arrays["x"], arrays["y"]
    keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:n] for c in np.unique(y)]))
    np.savez(out, x=x[keep], y=y[keep])
    return out


def test_gpu_suite_tiny(tmp_path):
    debian_fashion_mnist()
    npz = per_class(shared("cifar10_jpeg", "cifar10_jpeg_test.npz"), 100, tmp_path / "c.npz")
    done = _run("gpu_suite.sh", {"RESULTS": str(tmp_path), "CIFAR_NPZ": str(npz)})
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("loss_speed", "engine_speed", "engine_layout", "precision", "compile", "capture"):
        payload = json.loads((tmp_path / f"{name}_cpu.json").read_text())
        assert payload["meta"]["device"] == "cpu" and payload["meta"]["torch"]
        assert payload["rows"], name
    precision = json.loads((tmp_path / "precision_cpu.json").read_text())["rows"]
    assert [r["precision"] for r in precision] == ["float32", "bfloat16"]
    assert all(r["problems"] == [] for r in precision)
    assert all(r["agrees"] for r in json.loads((tmp_path / "compile_cpu.json").read_text())["rows"])
    layout = json.loads((tmp_path / "engine_layout_cpu.json").read_text())
    assert layout["settings"]["engine_settings"] == ["train.channels_last=true"]
    assert all(r["agrees"] for r in json.loads((tmp_path / "capture_cpu.json").read_text())["rows"])
    counted = json.loads((tmp_path / "op_count_cpu.json").read_text())
    ops, stages = counted["ops"], counted["mr2_stages"]
    assert len(ops["ce (torch)"]) == 20 and set(ops) > {"mr2", "ce", "focal"}
    mr2_gram = counted["gpu_path_ops"].get("mr2", ops["mr2"])
    assert sum(stages.values()) == len(mr2_gram) and len(stages) == 4, stages
    text = (tmp_path / "gpu_suite.md").read_text()
    assert "FAILED" not in text and "engine / hand" in text and "ATen ops / step" in text


def test_gpu_study_tiny(tmp_path):
    """The GPU study script in its tiny CPU mode: every study checks out, then the
    frontier study (all of CIFAR-10's test images, six methods x two seeds, each seed its
    own split, logits kept) runs and is reported as it goes and at the end, frontiers and
    the table against ERM + offsets included, and packed without checkpoints."""
    debian_fashion_mnist()
    npz = shared("cifar10_jpeg", "cifar10_jpeg_test.npz")
    pack = tmp_path / "pack.tgz"
    env = {
        "RESULTS": str(tmp_path / "r"),
        "CIFAR_NPZ": str(npz),
        "CIFAR10_JPEG": str(shared("cifar10_jpeg", "cifar10_jpeg.npz")),
        "PACK": str(pack),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # the decoded images' cache
        "REPORT_EVERY": "45",  # partial reports while it runs (each one costs seconds)
    }
    done = _run("gpu_study.sh", env, args=("frontier",))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "partial reports" in done.stdout
    study = tmp_path / "r" / "frontier"
    report = (study / "report.md").read_text()
    for method in ("ce", "ce_temperature", "mr2", "mr2_reversed", "focal", "group_dro"):
        assert f"| {method} |" in report
        assert (study / method / "seed1" / "logits.npz").is_file()
    assert "## At the accuracy you can afford" in report and "| ce | yes |" in report
    assert (study / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((study / "mr2" / "seed0" / "result.json").read_text())
    cfg = result["config"]
    assert cfg["data"]["train_subset"] == 300 and cfg["data"]["name"] == "cifar10_jpeg"
    assert cfg["data"]["split_follows_seed"] is True
    assert cfg["model"]["options"]["widths"] == [8, 16, 16]  # the tiny mode's size won
    assert sum(result["test"]["support"]) == 10_000  # all the test images, 10 classes
    summary = (study / "summary.md").read_text()  # the power statement beside the report
    assert "seeds for +1 pt" in summary and "| mr2 |" in summary
    assert pack.stat().st_size > 0
    listing = subprocess.run(["tar", "tzf", str(pack)], capture_output=True, text=True).stdout
    assert "report.md" in listing and ".pt" not in listing


def test_gpu_study_cifar100_needs_its_folder(tmp_path):
    env = {**os.environ, "RESULTS": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_study.sh"), "--cifar100", str(tmp_path / "no")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "no folder" in done.stderr


@pytest.mark.parametrize("script", ["gpu_suite.sh", "gpu_study.sh"])
def test_tiny_mode_needs_a_scratch_folder(script):
    env = {k: v for k, v in os.environ.items() if k != "RESULTS"}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / script), "--tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "RESULTS" in done.stderr


def test_gpu_study_stops_before_training_when_a_study_does_not_check_out(tmp_path):
    """The checks run at once in the background; any failing one stops the script (exit 2)
    before a study starts."""
    done = _run("gpu_study.sh", {"RESULTS": str(tmp_path / "r"), "PYTHON": "false"})
    assert done.returncode == 2 and "does not check out" in done.stderr
    assert not list((tmp_path / "r").glob("*.log"))  # nothing was started


def test_gpu_lease_tiny_checks_then_no_study_without_time(tmp_path):
    """The lease script's checks in their CPU forms (tiny shapes); with
    a budget they use up, the study is skipped and says why (its tiny form is the study
    script's own test)."""
    done = _run("gpu_lease.sh", {"RESULTS": str(tmp_path), "BUDGET_S": "30"}, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp_path / "lease.md").read_text()
    for step in ("loss_speed", "capture", "capture_kept"):
        assert f"({step}: exit 0," in text, text
    assert '"device": "cpu"' in text  # the machine
    assert "no time left for the study" in text and not (tmp_path / "study").exists()
    for name, kept in (("capture", False), ("capture_kept", True)):
        capture = json.loads((tmp_path / f"{name}_cpu.json").read_text())
        assert capture["keep_compiled"] is kept and len(capture["rows"]) == 2
        assert all(row["agrees"] for row in capture["rows"])


def test_gpu_lease_runs_only_the_steps_asked_for(tmp_path):
    done = _run("gpu_lease.sh", {"RESULTS": str(tmp_path), "BUDGET_S": "1", "STEPS": "capture"})
    assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp_path / "lease.md").read_text()
    assert "(capture: exit 0," in text
    assert "loss_speed" not in text and "capture_kept" not in text
