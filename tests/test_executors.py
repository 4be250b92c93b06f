"""Comparisons on a process pool, Ray and submitit give the numbers of the sequential run;
a failing run is recorded and the others finish; a killed pool resumes without training
any run twice."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from typing import ClassVar

import pytest

from helpers import tiny_config
from mr2 import cli
from mr2.engine import config, executors, identity
from mr2.engine.compare import RunsFailed, run_compare
from mr2.engine.progress import RunProgress

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out


def comparison(**compare):
    """scikit-learn's digits, 2 methods x 2 seeds with a 2-point grid; one thread per run
    (so runs are reproducible wherever they run)."""
    cfg = tiny_config(train__threads=1, train__epochs=3, train__batch_size=64)
    cfg.data.name, cfg.data.options = "digits", {}
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0, 1]
    cfg.compare.grid = {"mr2": {"lambda_rep": [0.0, 0.1]}}
    for key, value in compare.items():
        setattr(cfg.compare, key, value)
    return cfg


def numbers_of(out):
    """Every result.json's test numbers and the selection, by run directory."""
    found = {}
    for path in sorted(out.rglob("result.json")):
        result = json.loads(path.read_text())
        found[str(path.parent.relative_to(out))] = (result["test"], result["val"])
    selection = json.loads((out / "mr2" / "selection.json").read_text())["selected"]
    return found, selection


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "C"
    run_compare(comparison(), out, show_progress=False, log=lambda *_: None)
    return numbers_of(out)


def test_pool_equals_sequential(sequential, tmp_path):
    lines = []
    out = tmp_path / "C"
    run_compare(comparison(executor="pool", jobs=2), out, show_progress=False, log=lines.append)
    numbers = numbers_of(out)
    assert len(numbers[0]) == 6  # 2 grid points + 2 methods x 2 seeds
    assert numbers == sequential
    assert sum(line.startswith("[start]") for line in lines) == 6
    assert any("ETA" in line for line in lines)


def test_ray_equals_sequential(sequential, tmp_path):
    out = tmp_path / "C"
    run_compare(comparison(executor="ray", jobs=2), out, show_progress=False, log=lambda *_: 0)
    assert numbers_of(out) == sequential


def test_submitit_local_equals_sequential(sequential, tmp_path):
    out = tmp_path / "C"
    options = {"cluster": "local", "timeout_min": 10}
    cfg = comparison(executor="slurm", jobs=2, executor_options=options)
    run_compare(cfg, out, show_progress=False, log=lambda *_: 0)
    assert numbers_of(out) == sequential
    assert (out / "slurm").is_dir()  # submitit's logs


@pytest.mark.parametrize("executor", ["local", "pool"])
def test_a_failing_run_is_recorded_and_the_others_finish(executor, tmp_path, capsys):
    cfg = comparison(executor=executor, jobs=2, grid={})
    cfg.compare.options = {"mr2": {"c_bar": 1e-38}}  # logits / 1e-38 overflow: a runtime error
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    out = tmp_path / "C"
    assert cli.main(["compare", "--config", str(path), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "2 run(s) failed" in captured.err and "mr2/seed0" in captured.err
    for seed in (0, 1):
        assert (out / "ce" / f"seed{seed}" / "result.json").is_file()
        failed = json.loads((out / "mr2" / f"seed{seed}" / "failed.json").read_text())
        assert "NaN or Inf" in failed["error"] and "Traceback" in failed["traceback"]
        assert failed["log_tail"] == []  # it failed in its first epoch
    md = (out / "report.md").read_text()
    assert "Missing runs" in md and "mr2 seed 0" in md  # marked, not silently averaged
    with pytest.raises(RunsFailed):  # the same command again retries only the failed runs
        run_compare(cfg, out, show_progress=False, log=lambda *_: None)


def test_failed_record_goes_once_the_run_finishes(tmp_path):
    cfg = comparison(grid={}, methods=["ce"], seeds=[0])
    (tmp_path / "C" / "ce" / "seed0").mkdir(parents=True)
    (tmp_path / "C" / "ce" / "seed0" / "failed.json").write_text("{}")
    run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    assert not (tmp_path / "C" / "ce" / "seed0" / "failed.json").exists()


def test_killed_pool_resumes_without_training_a_run_twice(tmp_path):
    cfg = comparison(executor="pool", jobs=2, grid={}, seeds=[0, 1, 2])
    cfg.data.name = "synthetic"  # bigger runs, so that the kill lands mid-way
    cfg.data.options = {"num_classes": 5, "dim": 32, "n_train": 600, "n_test": 20}
    cfg.model.options = {"width": 256}
    cfg.train.epochs = 4
    out = tmp_path / "C"
    cmd, env = _compare_command(cfg, tmp_path, out)
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    while not list(out.rglob("result.json")) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its pool workers
    proc.wait()
    finished = {p: p.read_bytes() for p in out.rglob("result.json")}
    assert 0 < len(finished) < 6
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for p, blob in finished.items():
        assert p.read_bytes() == blob  # finished before the kill: reused, not retrained
    for method in ("ce", "mr2"):
        for seed in (0, 1, 2):
            log = (out / method / f"seed{seed}" / "log.jsonl").read_text().splitlines()
            assert [json.loads(line)["epoch"] for line in log] == [0, 1, 2, 3]


def _kill_worker_of(run_dir, times: int, stop) -> list[int]:
    """Kill the pool worker that trains ``run_dir`` (its pid is in the run's lock file) up
    to ``times`` times, each retry's worker once."""
    killed: list[int] = []
    lock = identity.lock_path(run_dir)
    while len(killed) < times and not stop.is_set():
        try:
            pid = int(lock.read_text() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and pid not in killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.002)
    return killed


def _with_killer(cfg, out, run_dir, times):
    import threading

    stop, killed = threading.Event(), []
    killer = threading.Thread(target=lambda: killed.extend(_kill_worker_of(run_dir, times, stop)))
    killer.start()
    try:
        run_compare(cfg, out, show_progress=False, log=lambda *_: None)
    finally:
        stop.set()
        killer.join()
    return killed


def test_a_dead_worker_fails_only_its_run_after_one_retry(tmp_path):
    cfg = comparison(executor="pool", jobs=2, grid={})
    out = tmp_path / "C"
    with pytest.raises(RunsFailed) as err:
        _with_killer(cfg, out, out / "mr2" / "seed1", times=2)
    assert [str(d) for d, _ in err.value.failures] == [str(out / "mr2" / "seed1")]
    failed = json.loads((out / "mr2" / "seed1" / "failed.json").read_text())
    assert "worker process died twice" in failed["error"]
    for method, seed in (("ce", 0), ("ce", 1), ("mr2", 0)):
        assert (out / method / f"seed{seed}" / "result.json").is_file()
    from mr2 import report

    md = report.build([out], tmp_path / "R").path.read_text()
    assert "Missing runs" in md and "mr2 seed 1" in md and "died twice" in md


def test_a_worker_killed_once_is_retried_to_the_same_numbers(sequential, tmp_path):
    out = tmp_path / "C"
    killed = _with_killer(comparison(executor="pool", jobs=2), out, out / "mr2" / "seed1", 1)
    assert len(killed) == 1
    assert numbers_of(out) == sequential  # the retry trained the same run


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in os.listdir(f"/proc/{p}/task") if os.path.isdir(f"/proc/{p}/task") else []:
            try:
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    kids = {int(k) for k in fh.read().split()}
            except OSError:
                continue
            todo += sorted(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _assert_all_gone(pids: set[int], wait_s: float = 20.0) -> None:
    deadline = time.time() + wait_s
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]


def _compare_command(cfg, tmp_path, out) -> tuple[list[str], dict[str, str]]:
    """``mr2 compare`` of ``cfg`` into ``out`` as a separate process (one thread per run)."""
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    cmd = [sys.executable, "-m", "mr2", "compare", "--config", str(path), "--out", str(out)]
    return cmd, {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopping_a_pool_comparison_leaves_no_process(sig, tmp_path):
    cfg = comparison(executor="pool", jobs=2, grid={}, seeds=[0, 1, 2])
    cfg.train.epochs = 200  # runs that are still training when the signal comes
    out = tmp_path / "C"
    cmd, env = _compare_command(cfg, tmp_path, out)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(out.rglob("log.jsonl"))) < 2 and time.time() < deadline:  # both training
        assert proc.poll() is None
        time.sleep(0.05)
    below = _descendants(proc.pid)
    assert len(below) >= 2  # the two workers (and no manager process)
    os.kill(proc.pid, sig)  # the comparison's process only, not its group
    proc.wait(timeout=60)
    _assert_all_gone(below)


def test_progress_lines_and_eta():
    from mr2.engine.executors import Outcome

    lines = []
    progress = RunProgress(["a", "b", "c", "d"], parallel=2, log=lines.append)
    progress(0, None)
    progress(1, None)
    progress(0, Outcome("done", seconds=10.0))
    progress(1, Outcome("done", seconds=20.0, reused=True))
    assert lines[0] == "[start] a (1 running)"
    assert lines[2] == "[1/4] a done in 10.0 s; 3 left, ETA 15 s"  # 10 s x 3 runs / 2 at once
    assert lines[3] == "[2/4] b done earlier, skipped; 2 left, ETA 10 s"


def test_executor_options_are_the_executor_s_own_and_checked_up_front(tmp_path):
    cfg = comparison(executor="slurm", executor_options={"partiton": "gpu"})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['partiton'\]"):
        run_compare(cfg, tmp_path / "C", log=lambda *_: None)
    cfg = comparison(executor="pool", executor_options={"address": "auto"})  # ray's option
    with pytest.raises(ValueError, match=r"executor 'pool': .*\['address'\] are not options"):
        run_compare(cfg, tmp_path / "C", log=lambda *_: None)
    cfg = comparison(executor="ray", executor_options={"resources": 4})
    with pytest.raises(ValueError, match=r"executor_options.resources must be a table"):
        run_compare(cfg, tmp_path / "C", log=lambda *_: None)
    assert not (tmp_path / "C").exists()
    # the old fields: refused with the new spelling, unless they hold their old default
    with pytest.raises(ValueError, match=r"compare.ray_address is now compare.executor_options"):
        config.apply(config.RunConfig(), {"compare": {"ray_address": "auto"}})
    with pytest.raises(ValueError, match=r"compare.slurm is now compare.executor_options"):
        config.apply(config.RunConfig(), {"compare": {"slurm": {"partition": "gpu"}}})
    old = {"compare": {"ray_address": "", "ray_resources": {}, "slurm": {}}}  # a saved config
    assert config.apply(config.RunConfig(), old) == config.RunConfig()


def test_chaos_worker_killed_then_parent_killed_then_resumed(sequential, tmp_path):
    """Issue 23's chaos test: a pool comparison of 2 methods x 2 seeds (and a grid); one
    worker is killed, then the whole comparison process; the same command again finishes it.
    Every run ends exactly once, equal to an undisturbed comparison, no process is left
    behind, and the report lists nothing twice and nothing foreign."""
    from mr2 import report

    cfg = comparison(executor="pool", jobs=2)
    out = tmp_path / "C"
    cmd, env = _compare_command(cfg, tmp_path, out)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    lock = identity.lock_path(out / "mr2" / "grid" / "lambda_rep=0.1" / "seed0")
    while not lock.is_file() or not lock.read_text().strip():  # a tuning run has started
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    below = _descendants(proc.pid)
    os.kill(int(lock.read_text()), signal.SIGKILL)  # its worker dies mid-run
    while not list(out.rglob("seed*/result.json")) and time.time() < deadline:
        time.sleep(0.02)
    below |= _descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)  # then the comparison itself
    proc.wait(timeout=60)
    _assert_all_gone(below)  # no worker outlives it
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert numbers_of(out) == sequential  # every run as an undisturbed comparison has it
    for log in out.rglob("log.jsonl"):  # each epoch trained and logged exactly once
        assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [0, 1, 2]
    built = report.build([out], tmp_path / "R")
    runs = [(r.method, r.seed) for r in built.summary.runs]
    assert sorted(runs) == [("ce", 0), ("ce", 1), ("mr2", 0), ("mr2", 1)]
    assert built.summary.missing == [] and built.summary.not_compared == []


class Reversed(executors.Executor):
    """A user's executor in one class: the runs here, last first (it records the order)."""

    order: ClassVar[list[str]] = []
    OPTIONS: ClassVar[dict[str, str]] = {"note": "a word written to OUT/note.txt"}

    @classmethod
    def problems(cls, options):
        found = super().problems(options)
        return found + ([] if isinstance(options.get("note", ""), str) else ["note: a string"])

    def run(self, jobs, options, report):
        (self.out / "note.txt").write_text(self.options.get("note", ""))
        outcomes = {}
        for i in reversed(range(len(jobs))):
            Reversed.order.append(jobs[i].label)
            report(i, None)
            outcomes[i] = executors.run_job(jobs[i], options)
            report(i, outcomes[i])
        return [outcomes[i] for i in range(len(jobs))]


@pytest.fixture
def reversed_executor():
    executors.register("reversed", "test: last run first")(Reversed)
    Reversed.order.clear()
    yield
    executors.EXECUTORS._entries.pop("reversed")


def test_an_executor_of_one_class_registered_from_a_test_module(
    reversed_executor, sequential, tmp_path
):
    out = tmp_path / "C"
    cfg = comparison(executor="reversed", executor_options={"note": "hello"})
    run_compare(cfg, out, show_progress=False, log=lambda *_: None)
    assert numbers_of(out) == sequential  # the same numbers wherever the runs train
    assert (out / "note.txt").read_text() == "hello"  # its own option, in its folder
    # it did run them, last first; the comparison hands them over seed by seed (so that one
    # stopped early has every method on its first seeds)
    assert Reversed.order[-4:] == ["mr2 seed 1", "ce seed 1", "mr2 seed 0", "ce seed 0"]
    with pytest.raises(ValueError, match=r"unknown executor 'revresed' \(did you mean 'reversed'"):
        run_compare(comparison(executor="revresed"), tmp_path / "D", log=lambda *_: None)
    bad = comparison(executor="reversed", executor_options={"note": 3, "nite": "x"})
    with pytest.raises(
        ValueError,
        match=r"\['nite'\] are not options of it; it takes note .*\n"
        r"  executor 'reversed': note: a string",
    ):
        run_compare(bad, tmp_path / "D", log=lambda *_: None)
    assert not (tmp_path / "D").exists()  # refused before anything was written


def test_an_executor_s_missing_package_is_named_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"'ray' needs ray: pip install 'mr2\[cluster\]'"):
        run_compare(comparison(executor="ray"), tmp_path / "C", log=lambda *_: None)
    assert not (tmp_path / "C").exists()
