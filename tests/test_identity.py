"""Run identity: a run directory is reused, resumed or skipped only for its own
configuration; mismatches are errors that change nothing; --overwrite replaces; one
process per run directory."""

import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from helpers import tiny_config
from mr2 import cli
from mr2.engine import config, identity
from mr2.engine.compare import run_compare, run_config
from mr2.engine.train import train

train_module = importlib.import_module("mr2.engine.train")


def snapshot(folder):
    """Every file under ``folder`` with its bytes (to show nothing was modified)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write(cfg, path):
    path.write_text(config.to_toml(cfg))
    return str(path)


def test_retrain_with_another_loss_is_refused_and_changes_nothing(tmp_path, capsys):
    path = write(tiny_config(), tmp_path / "c.toml")
    out = str(tmp_path / "R")
    assert cli.main(["train", "--config", path, "--set", "loss.name=mr2", "--out", out]) == 0
    before = snapshot(tmp_path / "R")
    capsys.readouterr()
    assert cli.main(["train", "--config", path, "--set", "loss.name=ce", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "loss.name: 'mr2' -> 'ce'" in err
    assert "--overwrite" in err
    assert snapshot(tmp_path / "R") == before  # nothing in the directory modified
    assert json.loads((tmp_path / "R" / "result.json").read_text())["method"] == "mr2"


def test_overwrite_replaces_the_old_run(tmp_path):
    train(tiny_config(loss__name="mr2"), tmp_path / "R", show_progress=False)
    (tmp_path / "R" / "stray.txt").write_text("old")
    result = train(tiny_config(), tmp_path / "R", overwrite=True, show_progress=False)
    assert result.method == "ce"
    assert not (tmp_path / "R" / "stray.txt").exists()  # nothing of the old run mixed in
    assert json.loads((tmp_path / "R" / "result.json").read_text())["method"] == "ce"
    record = json.loads((tmp_path / "R" / "run.json").read_text())
    assert record["identity"]["loss.name"] == "ce" and record["fingerprint"] == result.fingerprint


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_be_set_up(tmp_path):
    train(tiny_config(), tmp_path / "R", show_progress=False)
    before = snapshot(tmp_path / "R")
    np.savez(tmp_path / "bad.npz", z=np.zeros(3))  # loads only once the run is set up
    bad = tiny_config(data__name="npz", data__path=str(tmp_path / "bad.npz"), data__options={})
    with pytest.raises(ValueError, match=r"bad\.npz needs keys"):
        train(bad, tmp_path / "R", overwrite=True, show_progress=False)
    assert snapshot(tmp_path / "R") == before


def test_same_configuration_is_reused(tmp_path):
    first = train(tiny_config(), tmp_path / "R", show_progress=False)
    mtime = (tmp_path / "R" / "result.json").stat().st_mtime_ns
    again = train(tiny_config(), tmp_path / "R", show_progress=False)
    assert again.test == first.test
    assert (tmp_path / "R" / "result.json").stat().st_mtime_ns == mtime  # not retrained
    # --overwrite replaces runs of *another* configuration only: this one is still reused
    train(tiny_config(), tmp_path / "R", show_progress=False, overwrite=True)
    assert (tmp_path / "R" / "result.json").stat().st_mtime_ns == mtime


def test_display_only_settings_do_not_change_the_fingerprint():
    a, b = tiny_config(), tiny_config(train__threads=1, train__eval_batch_size=7)
    b.compare.methods = ["ce"]
    assert identity.fingerprint(identity.identity(a)) == identity.fingerprint(identity.identity(b))
    c = tiny_config(train__seed=1)
    assert identity.differences(identity.identity(a), identity.identity(c)) == [
        "train.seed: 0 -> 1"
    ]


def test_loss_defaults_are_part_of_the_identity():
    """An explicit default and an omitted option are the same run; a changed default is not."""
    a = tiny_config(loss__name="mr2")
    b = tiny_config(loss__name="mr2", loss__options={"lambda_rep": 0.03})
    assert identity.identity(a) == identity.identity(b)
    assert identity.identity(a)["loss.options.lambda_rep"] == 0.03


def test_a_key_added_later_does_not_orphan_earlier_runs(tmp_path):
    """A run recorded before data.autoaugment existed, or while train.amp_dtype = "auto" was
    still fingerprinted, matches its config; the new feature switched on does not."""
    run = tmp_path / "R"
    train(tiny_config(), run, show_progress=False)
    record = json.loads((run / "run.json").read_text())
    assert "data.autoaugment" not in record["identity"]  # False: what runs did before
    old = {**record["identity"], "train.amp_dtype": "auto"}  # as an earlier version wrote it
    record.update(identity=old, fingerprint=identity.fingerprint(old))
    (run / "run.json").write_text(json.dumps(record))
    assert identity.inspect_run(run, tiny_config()).state is identity.State.MATCH
    on = identity.inspect_run(run, tiny_config(data__autoaugment=True))
    assert on.state is identity.State.MISMATCH and "data.autoaugment: '<unset>' -> True" in (
        on.message
    )


def test_resume_over_a_mismatched_checkpoint_is_refused(tmp_path):
    """A checkpoint of another width: an error naming the keys, config.toml untouched."""
    cfg = tiny_config(train__epochs=3)
    train(cfg, tmp_path / "R", show_progress=False)
    (tmp_path / "R" / "result.json").unlink()  # an interrupted run: checkpoint only
    before = snapshot(tmp_path / "R")
    wider = tiny_config(train__epochs=3, model__options={"width": 64})
    with pytest.raises(identity.RunMismatchError, match=r"model\.options\.width: 32 -> 64"):
        train(wider, tmp_path / "R", show_progress=False)
    assert snapshot(tmp_path / "R") == before


def test_directory_without_identity_is_refused(tmp_path):
    (tmp_path / "R").mkdir()
    (tmp_path / "R" / "result.json").write_text("{}")
    with pytest.raises(identity.RunMismatchError, match=r"no run\.json"):
        train(tiny_config(), tmp_path / "R", show_progress=False)


def test_overwrite_never_empties_a_folder_that_is_not_a_run(tmp_path):
    """--overwrite removes runs of mr2's only: a folder without run.json (a .git, a user's
    files) is refused by name, with and without --overwrite, by train and by compare, and
    the refusal does not suggest --overwrite."""
    for where in ("R", "C/ce/seed0"):
        folder = tmp_path / where
        (folder / ".git").mkdir(parents=True)
        (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        (folder / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(identity.RunMismatchError, match=r"not a run directory") as err:
            train(tiny_config(), tmp_path / "R", overwrite=overwrite, show_progress=False)
        assert "--overwrite (" not in str(err.value) and "R holds .git, notes.txt" in str(err.value)
        cfg = tiny_config()
        cfg.compare.methods, cfg.compare.seeds = ["ce"], [0]
        with pytest.raises(identity.RunMismatchError, match=r"not a run directory"):
            run_compare(cfg, tmp_path / "C", overwrite=overwrite, log=lambda *_: None)
    for where in ("R", "C/ce/seed0"):
        assert (tmp_path / where / ".git" / "HEAD").is_file()
        assert (tmp_path / where / "notes.txt").read_text() == "mine"


def _npz_config(path):
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(60, 4)).astype(np.float32), y=np.arange(60) % 3)
    return tiny_config(data__name="npz", data__path=str(path), data__options={})


def test_a_data_file_rewritten_at_the_same_path_is_another_run(tmp_path):
    cfg = _npz_config(tmp_path / "d.npz")
    train(cfg, tmp_path / "R", show_progress=False)
    assert identity.inspect_run(tmp_path / "R", cfg).finished
    rng = np.random.default_rng(1)  # regenerated: same name, other content
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 4)).astype(np.float32), y=np.arange(60) % 3)
    found = identity.inspect_run(tmp_path / "R", cfg)
    assert found.state is identity.State.MISMATCH and "data.path_sha256" in found.message
    with pytest.raises(identity.RunMismatchError, match=r"data\.path_sha256"):
        train(cfg, tmp_path / "R", show_progress=False)


def test_runs_recorded_before_the_data_hash_still_match(tmp_path):
    cfg = _npz_config(tmp_path / "d.npz")
    train(cfg, tmp_path / "R", show_progress=False)
    record = json.loads((tmp_path / "R" / "run.json").read_text())
    del record["identity"][identity.DATA_HASH]  # as an older mr2 wrote it
    record["fingerprint"] = identity.fingerprint(record["identity"])
    (tmp_path / "R" / "run.json").write_text(json.dumps(record))
    assert identity.inspect_run(tmp_path / "R", cfg).state is identity.State.MATCH


def test_a_run_being_written_is_not_a_foreign_run(tmp_path):
    """Another process's atomic write in flight (only NAME.<random>.tmp so far) is a run
    being set up, not a run of an unknown configuration (a race two compares hit)."""
    (tmp_path / "R").mkdir()
    (tmp_path / "R" / "run.json.abc123.tmp").write_text("{")
    assert identity.inspect_run(tmp_path / "R", tiny_config()).state is identity.State.FRESH


def test_compare_with_changed_epochs_is_refused_before_training(tmp_path, capsys):
    cfg = tiny_config(train__epochs=1)
    cfg.compare.methods, cfg.compare.seeds = ["ce"], [0, 1]
    run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    before = snapshot(tmp_path / "C")
    longer = tiny_config(train__epochs=2)
    longer.compare.methods, longer.compare.seeds = ["ce"], [0, 1]
    with pytest.raises(identity.RunMismatchError, match=r"train\.epochs: 1 -> 2") as err:
        run_compare(longer, tmp_path / "C", show_progress=False, log=lambda *_: None)
    assert "ce/seed0" in str(err.value) and "ce/seed1" in str(err.value)  # all listed at once
    assert snapshot(tmp_path / "C") == before
    results = run_compare(
        longer, tmp_path / "C", overwrite=True, show_progress=False, log=lambda *_: None
    )
    assert [r.config["train"]["epochs"] for r in results] == [2, 2]
    assert all(r.test.confusion == [] and r.history == [] for r in results)  # memory


def test_loss_options_under_compare_are_the_base_of_their_method(tmp_path):
    cfg = tiny_config(loss__name="mr2", loss__options={"lambda_rep": 0.5, "c_bar": 2.0})
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0]
    cfg.compare.options = {"mr2": {"c_bar": 3.0}}
    run = run_config(cfg, "mr2", 0)
    assert run.loss.options == {"lambda_rep": 0.5, "c_bar": 3.0}  # compare.options override
    assert run_config(cfg, "ce", 0).loss.options == {}
    results = run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    mr2 = next(r for r in results if r.method == "mr2")
    assert mr2.config["loss"]["options"] == {"lambda_rep": 0.5, "c_bar": 3.0}
    assert mr2.identity["loss.options.lambda_rep"] == 0.5


def test_loss_options_for_a_method_not_compared_are_refused(tmp_path):
    cfg = tiny_config(loss__options={"lambda_rep": 0.5})  # loss.name is "ce"
    cfg.compare.methods, cfg.compare.seeds = ["mr2"], [0]
    cfg.compare.reference = "mr2"
    with pytest.raises(ValueError, match=r"\[loss\] options / preset are set for loss.name = 'ce'"):
        run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    assert not (tmp_path / "C").exists()


def test_typo_in_second_method_is_reported_before_anything_trains(tmp_path, capsys):
    path = write(tiny_config(), tmp_path / "c.toml")
    argv = ["compare", "--config", path, "--methods", "ce", "mr2", "--seeds", "0"]
    argv += ["--set", "compare.options.mr2.lamda_rep=0.1", "--out", str(tmp_path / "C")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "lamda_rep" in err and "did you mean 'lambda_rep'" in err
    assert not (tmp_path / "C").exists()  # no run directory written


def test_grid_points_are_checked_and_labels_stay_inside_out(tmp_path):
    cfg = tiny_config()
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0]
    cfg.compare.grid = {"mr2": {"lambda_rep": [0.1, -1.0]}}
    with pytest.raises(ValueError, match=r"grid point lambda_rep=-1.0: .*lambda_rep must be"):
        run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    assert not (tmp_path / "C").exists()
    from mr2.engine.compare import point_label

    assert "/" not in point_label({"x": "../../etc"}) and ".." not in point_label({"x": ".."})


def test_a_dead_process_does_not_hold_the_lock(tmp_path):
    code = (
        "import sys, time; from mr2.engine.identity import RunLock; "
        f"lock = RunLock({str(tmp_path / 'R')!r}).__enter__(); print('locked', flush=True); "
        "time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    with pytest.raises(identity.RunBusyError, match=f"pid {child.pid}"):
        train(tiny_config(), tmp_path / "R", show_progress=False)
    child.kill()
    child.wait()
    assert train(tiny_config(), tmp_path / "R", show_progress=False).method == "ce"


@pytest.mark.slow
def test_two_compares_on_one_directory_train_each_run_once(tmp_path):
    cfg = tiny_config(train__epochs=6)
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0, 1]
    cfg.compare.reference = "ce"
    path = write(cfg, tmp_path / "c.toml")
    out = tmp_path / "C"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mr2", "compare", "--config", path, "--out", str(out)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen(cmd, env=env, **pipes) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for method in ("ce", "mr2"):
        for seed in (0, 1):
            log = (out / method / f"seed{seed}" / "log.jsonl").read_text().splitlines()
            assert [json.loads(line)["epoch"] for line in log] == list(range(6))  # once
    trained = sum(o.count("epoch 1/6") for o, _ in outs)
    assert trained == 4, outs  # each of the 4 runs trained by exactly one process


def test_checkpoint_from_torch_load_of_foreign_objects_is_refused(tmp_path):
    """A crafted checkpoint.pt (arbitrary pickled object) is never unpickled."""
    cfg = tiny_config(train__epochs=3)
    train(cfg, tmp_path / "R", show_progress=False)
    (tmp_path / "R" / "result.json").unlink()

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"model": Evil()}, tmp_path / "R" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint\.pt cannot be read as an mr2 checkpoint"):
        train(cfg, tmp_path / "R", show_progress=False)
    assert not (tmp_path / "pwned").exists()


def test_bit_flipped_checkpoint_is_an_error_naming_it(tmp_path):
    cfg = tiny_config(train__epochs=3)
    train(cfg, tmp_path / "R", show_progress=False)
    (tmp_path / "R" / "result.json").unlink()
    ckpt = tmp_path / "R" / "checkpoint.pt"
    blob = bytearray(ckpt.read_bytes())
    state = torch.load(ckpt, weights_only=True)
    weight = state["model"]["head.weight"]
    raw = weight.reshape(-1).view(torch.uint8).numpy().tobytes()
    at = bytes(blob).find(raw[:64])  # the head's weights inside the zip (stored, not deflated)
    assert at > 0
    blob[at + 3] ^= 0x10
    ckpt.write_bytes(bytes(blob))
    started = time.time()
    with pytest.raises(ValueError, match=r"checkpoint\.pt fails its checksum") as err:
        train(cfg, tmp_path / "R", show_progress=False)
    assert time.time() - started < 60
    assert ckpt.read_bytes() == bytes(blob)  # kept for inspection, not deleted
    # the message says what helps (--overwrite does not: the configuration is the same)
    assert "--no-resume" in str(err.value) and "--overwrite" not in str(err.value)
    with pytest.raises(ValueError, match="fails its checksum"):
        train(cfg, tmp_path / "R", overwrite=True, show_progress=False)
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    cfg.compare.methods, cfg.compare.seeds = ["ce"], [0]
    argv = ["compare", "--config", str(path), "--out", str(tmp_path / "C"), "--seeds", "0"]
    assert cli.main([*argv, "--methods", "ce"]) == 0
    ckpt_c = tmp_path / "C" / "ce" / "seed0" / "checkpoint.pt"
    (tmp_path / "C" / "ce" / "seed0" / "result.json").unlink()
    ckpt_c.write_bytes(bytes(blob))
    assert cli.main([*argv, "--methods", "ce"]) == 1  # the run fails, naming the file
    assert cli.main([*argv, "--methods", "ce", "--no-resume"]) == 0  # starts it over
    assert (tmp_path / "C" / "ce" / "seed0" / "result.json").is_file()


def test_a_checkpoint_copied_from_another_run_is_refused(tmp_path):
    a, b = tiny_config(train__epochs=3), tiny_config(train__epochs=3, train__seed=1)
    train(a, tmp_path / "A", show_progress=False)
    train(b, tmp_path / "B", show_progress=False)
    (tmp_path / "B" / "result.json").unlink()  # B interrupted before its end, say
    (tmp_path / "B" / "checkpoint.pt").write_bytes((tmp_path / "A" / "checkpoint.pt").read_bytes())
    with pytest.raises(ValueError, match=r"checkpoint\.pt belongs to another run.*--no-resume"):
        train(b, tmp_path / "B", show_progress=False)
    result = train(b, tmp_path / "B", resume=False, show_progress=False)  # what the error says
    assert result.seed == 1


def test_a_released_lock_is_removed_and_a_waiter_takes_a_fresh_one(tmp_path):
    """The holder removes the lock file before unlocking; a process that waited on the
    removed file must not count as holding the run while a newcomer locks a new file."""
    import threading

    run = tmp_path / "R"
    first = identity.RunLock(run).__enter__()
    got = threading.Event()
    waiter = identity.RunLock(run, wait=True)
    thread = threading.Thread(target=lambda: (waiter.__enter__(), got.set()))
    thread.start()
    time.sleep(0.2)  # the waiter has opened the file and blocks on it
    assert not got.is_set()
    first.__exit__()
    assert got.wait(10)
    assert identity.lock_path(run).is_file()  # the waiter's own, new lock file
    with pytest.raises(identity.RunBusyError):
        identity.RunLock(run).__enter__()  # the newcomer sees the waiter's lock
    waiter.__exit__()
    thread.join()
    assert not identity.lock_path(run).exists() and not run.exists()  # nothing left


def test_an_interrupted_compare_leaves_no_lock_only_folder(tmp_path, monkeypatch):
    """Ctrl-C while a run is being prepared (data, model): no folder for it, no lock file."""
    cfg = tiny_config()
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0]
    prepare = train_module.prepare

    def interrupted(cfg, *args, **kwargs):
        if cfg.loss.name == "mr2":
            raise KeyboardInterrupt
        return prepare(cfg, *args, **kwargs)

    monkeypatch.setattr(train_module, "prepare", interrupted)
    out = tmp_path / "C"
    with pytest.raises(KeyboardInterrupt):
        run_compare(cfg, out, show_progress=False, log=lambda *_: None)
    assert (out / "ce" / "seed0" / "result.json").is_file()
    assert not (out / "mr2" / "seed0").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith("lock")]
    monkeypatch.setattr(train_module, "prepare", prepare)  # run again: finished
    run_compare(cfg, out, show_progress=False, log=lambda *_: None)
    assert (out / "mr2" / "seed0" / "result.json").is_file()
