"""Two gloo processes on CPU behave like one process on the whole batch."""

import pytest
import torch

import ddp
import ddp_workers as w
from mr2 import MR2Loss

pytestmark = pytest.mark.ddp  # `make test-fast` leaves these out


def single_process(b: int, steps: int = 2):
    loss_fn = MR2Loss(4, lambda_rep=0.5, ema_decay=0.8, reduction="none")
    out = {}
    for step in range(steps):
        logits, f, y = w.global_batch(b=b, step=step)
        f = f.clone().requires_grad_(True)
        per_sample = loss_fn(logits, f, y)
        per_sample.mean().backward()
        out[step] = {"per_sample": per_sample.detach(), "grad": f.grad}
    return loss_fn, out


@pytest.mark.parametrize("sizes", [[15, 15], [11, 19]])
def test_statistics_are_synced_across_ranks(sizes):
    ranks = ddp.run(w.mr2_worker, 2, sizes, False)
    ref, _ = single_process(sum(sizes))
    for r in ranks:
        torch.testing.assert_close(r["margins"], ref.margins())
        torch.testing.assert_close(r["s_bar"], ref.s_bar())
        for name, buf in ref.state_dict().items():
            torch.testing.assert_close(r["state"][name], buf, msg=name)
    assert torch.equal(ranks[0]["margins"], ranks[1]["margins"])  # bit-identical on all ranks


@pytest.mark.parametrize("sizes", [[15, 15], [11, 19]])
def test_gather_features_matches_single_process(sizes):
    ranks = ddp.run(w.mr2_worker, 2, sizes, True)
    _, ref = single_process(sum(sizes))
    for step in range(2):
        per_sample = torch.cat([r[step]["per_sample"] for r in ranks])
        torch.testing.assert_close(per_sample, ref[step]["per_sample"])
        if sizes[0] == sizes[1]:
            # rank losses are local means; DDP averages gradients over the 2 ranks
            grad = torch.cat([r[step]["grad"] for r in ranks]) / 2
            torch.testing.assert_close(grad, ref[step]["grad"])


def test_without_gather_rep_term_sees_only_local_pairs():
    """Sanity check of the test itself: without gathering, results differ from one process."""
    ranks = ddp.run(w.mr2_worker, 2, [15, 15], False)
    _, ref = single_process(30)
    per_sample = torch.cat([r[0]["per_sample"] for r in ranks])
    assert not torch.allclose(per_sample, ref[0]["per_sample"])


def test_group_dro_under_ddp_equals_one_process():
    """Class weights q from global class counts, and DDP's gradient average equal to the
    gradient of one process's loss on the whole batch (class losses are global means)."""
    from mr2.losses import GroupDRO

    ranks = ddp.run(w.group_dro_worker, 2, [15, 15])
    ref = GroupDRO(4, step_size=0.5)
    for step in range(2):
        logits, _, y = w.global_batch(b=30, step=step)
        logits = logits.clone().requires_grad_(True)
        loss = ref(logits, None, y)
        loss.backward()
        grad = torch.cat([r[step]["grad"] for r in ranks]) / 2  # DDP averages over ranks
        torch.testing.assert_close(grad, logits.grad)
        mean_loss = sum(r[step]["loss"] for r in ranks) / 2
        torch.testing.assert_close(mean_loss, loss.detach())
    for r in ranks:
        torch.testing.assert_close(r["q"], ref.q)


def test_compare_under_torchrun_logs_and_reports_once(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import tiny_config
    from mr2.engine import config

    cfg = tiny_config(train__epochs=1)
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0]
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    cmd += ["2", "-m", "mr2", "compare", "--config", str(path), "--out", str(tmp_path / "C")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("[start]") == 2  # two runs, announced by rank 0 only
    assert done.stdout.count("Report: ") == 1


def test_a_failing_rank_is_a_clear_error_not_an_abort_or_a_hang(request):
    """Rank 1 raises while rank 0 waits in an all_reduce: the test gets rank 1's traceback
    at once (the waiting rank is stopped), and every ddp test carries its own timeout."""
    import time

    start = time.perf_counter()
    with pytest.raises(AssertionError, match=r"(?s)a rank failed.*planted failure of rank 1"):
        ddp.run(w.failing_worker, 2)
    assert time.perf_counter() - start < ddp.TIMEOUT.total_seconds()  # no wait for the timeout
    assert request.node.get_closest_marker("timeout") is not None
