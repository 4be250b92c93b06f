"""Test-suite settings: every multi-process test has its own timeout, so a stuck collective
or a dead peer fails that test with a clear error instead of holding the whole run."""

import pytest

DDP_TIMEOUT_S = 240  # the slowest (torchrun) takes ~10 s alone, a few times that under load


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("ddp") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(DDP_TIMEOUT_S))
