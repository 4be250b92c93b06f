"""Test-suite settings: the tiers, and a timeout for every multi-process test.

Tiers (``make test-unit``, ``make test-fast``, ``make test``): every test file is in one of
``UNIT`` (no training: functions, modules, records, reports of recorded runs; a guard
fails a unit test that trains), ``E2E`` (the command line, comparisons, DDP, backbones,
scripts, examples, docs) or else integration (tiny runs of the engine). A test marked
``slow`` or ``ddp`` is end to end wherever it lives; a test marked ``integration`` in a unit
file is integration. Every multi-process test has its own timeout, so a stuck collective
or a dead peer fails that test with a clear error instead of holding the whole run.

Under pytest-xdist every worker, and every process a test starts, computes on one thread:
workers already use every core, and two-thread pools on a busy core spin and wait on each
other."""

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

DDP_TIMEOUT_S = 240  # the slowest (torchrun) takes ~10 s alone, a few times that under load
UNIT = {
    "test_architecture", "test_backbones", "test_checks", "test_config", "test_data",
    "test_disparity_metric", "test_functional", "test_hard", "test_io", "test_jpeg_data",
    "test_loss_registry", "test_losses", "test_metrics", "test_mixed_and_ignored",
    "test_models", "test_mr2_loss", "test_mr2_step", "test_precision",
    "test_properties", "test_registry", "test_report", "test_representation_pairs",
    "test_result", "test_saved_records", "test_soft_targets", "test_vision_data",
    "test_weights", "test_with_features",
}  # fmt: skip
E2E = {
    "test_any_model", "test_backbone_runs", "test_benchmark_environment", "test_distributed",
    "test_docs", "test_examples", "test_executors", "test_gpu_scripts", "test_packaging",
}  # fmt: skip
TIERS = ("unit", "integration", "e2e")


def tier(item: pytest.Item) -> str:
    if item.get_closest_marker("slow") or item.get_closest_marker("ddp"):
        return "e2e"
    if item.get_closest_marker("integration"):
        return "integration"
    path = Path(str(item.fspath))
    if "tests" not in path.parts:  # the package's doctests
        return "unit"
    stem = path.stem
    return "unit" if stem in UNIT else "e2e" if stem in E2E else "integration"


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(getattr(pytest.mark, tier(item)))
        if item.get_closest_marker("ddp") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(DDP_TIMEOUT_S))


@pytest.fixture(autouse=True)
def _unit_tests_do_not_train(request, monkeypatch):
    """A unit test that runs the engine's training loop fails, naming the fix."""
    if tier(request.node) != "unit":
        return

    def refuse(*args, **kwargs):
        raise AssertionError(
            "a unit test trains (mr2.engine.fit.train_epoch): mark it "
            "@pytest.mark.integration or move it to an integration file (tests/conftest.py)"
        )

    monkeypatch.setattr("mr2.engine.fit.train_epoch", refuse)
