"""mr2's own files: the user's umask, weights_only loading of everything mr2 writes,
checksums, stale temporary files, clear messages for unwritable folders."""

import errno
import os
import stat

import pytest
import torch

from helpers import tiny_config
from mr2 import cli
from mr2.engine.compare import run_compare
from mr2.records import storage


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.integration  # trains (a tiny run)
def test_outputs_follow_the_umask(tmp_path, umask_022):
    cfg = tiny_config(loss__name="mr2")
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0]
    run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    assert cli.main(["report", str(tmp_path / "C")]) == 0
    written = [p for p in (tmp_path / "C").rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert not [n for n in names if n.endswith(".lock")]  # released locks are removed
    assert {"result.json", "checkpoint.pt", "final.pt", "run.json", "report.md"} <= names
    assert {p.name: oct(mode(p)) for p in written if mode(p) != 0o644} == {}


@pytest.mark.integration  # trains (a tiny run)
def test_every_torch_file_mr2_writes_loads_weights_only(tmp_path):
    """checkpoint.pt and final.pt of every kind of run hold only what weights_only allows."""
    cfg = tiny_config(loss__name="group_dro")
    cfg.compare.methods, cfg.compare.seeds = ["group_dro", "mr2", "lff", "jtt"], [0]
    cfg.compare.reference = "mr2"
    run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    files = sorted((tmp_path / "C").rglob("*.pt"))
    assert len(files) >= 9  # 4 runs x 2 + JTT's stage 1
    for f in files:
        state = torch.load(f, map_location="cpu", weights_only=True)
        assert storage.CHECKSUM_KEY in state
        assert set(storage.load_torch(f)) >= {"model", "loss"}


def test_checksum_covers_every_tensor_byte(tmp_path):
    state = {"a": torch.arange(6.0), "b": [1, 2.5, "x"], "c": torch.tensor(3, dtype=torch.int8)}
    storage.save_torch(state, tmp_path / "s.pt")
    loaded = storage.load_torch(tmp_path / "s.pt")
    assert torch.equal(loaded["a"], state["a"]) and loaded["b"] == [1, 2.5, "x"]
    changed = dict(torch.load(tmp_path / "s.pt", weights_only=True))
    changed["a"] = changed["a"].clone()
    changed["a"][2] += 1e-6
    torch.save(changed, tmp_path / "s.pt")
    with pytest.raises(storage.CorruptFileError, match="fails its checksum"):
        storage.load_torch(tmp_path / "s.pt")
    torch.save({"model": {}}, tmp_path / "plain.pt")
    with pytest.raises(storage.CorruptFileError, match="carries no mr2 checksum"):
        storage.load_torch(tmp_path / "plain.pt")


@pytest.mark.integration  # trains (a tiny run)
def test_stale_tmp_files_are_removed_when_a_run_starts(tmp_path):
    from mr2.engine.train import train

    run = tmp_path / "R"
    train(tiny_config(loss__name="mr2"), run, show_progress=False)  # a run of another config
    for name in ("checkpoint.pt.ab12.tmp", "result.json.cd34.tmp"):
        (run / name).write_bytes(b"x" * 100)
    (run / "keep.tmp.txt").write_text("left in the old run")
    train(tiny_config(), run, overwrite=True, show_progress=False)
    assert not list(run.glob("*.*.tmp"))
    assert not (run / "keep.tmp.txt").exists()  # --overwrite cleared the old directory
    (run / "final.pt.ef56.tmp").write_bytes(b"x")
    assert storage.remove_stale_tmp(run) == [run / "final.pt.ef56.tmp"]


def test_write_errors_name_the_file_and_the_fix(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write .*x\.json: the disk is full"):
        storage.save_json({"a": 1}, tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []  # no temporary file left
    monkeypatch.setattr(storage.os, "fsync", lambda fd: None)
    monkeypatch.setattr(
        storage.os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, ""))
    )
    with pytest.raises(OSError, match="permission denied"):
        storage.save_text("t", tmp_path / "y.txt")


def test_read_only_folder_through_the_cli(tmp_path, capsys, monkeypatch):
    """The same message path as a read-only disk, on a machine where tests run as root."""

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(storage.tempfile, "mkstemp", refuse)
    argv = ["train", "--out", str(tmp_path / "R"), "--set", "train.epochs=1"]
    argv += ["--set", "data.name=synthetic", "--set", "model.options={width = 8}"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "read-only" in err


def test_report_of_a_missing_directory_creates_nothing(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_a_full_disk_during_torch_save_is_a_clear_error(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    def failing_save(obj, fh):
        fh.write(b"partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing "
            "file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", failing_save)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100, 100, 0))
    with pytest.raises(OSError, match=r"cannot write .*ckpt\.pt: the disk is full"):
        storage.save_torch({"w": torch.ones(2)}, tmp_path / "ckpt.pt")
    assert list(tmp_path.iterdir()) == []  # no partial file left


@pytest.mark.integration  # trains (a tiny run)
@pytest.mark.parametrize("name", ["lock", "log.jsonl"])
def test_links_planted_in_a_run_folder_are_never_followed(name, tmp_path):
    from mr2.engine.identity import lock_path
    from mr2.engine.train import train

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "R"
    cfg = tiny_config(train__epochs=3)
    train(cfg, run, show_progress=False)
    (run / "result.json").unlink()  # an interrupted run, resumed below
    planted = lock_path(run) if name == "lock" else run / name
    planted.unlink(missing_ok=True)
    planted.symlink_to(victim)
    try:
        train(cfg, run, show_progress=False)
    except OSError as err:  # the lock: refused
        assert name == "lock" and "cannot write" in str(err)
    assert victim.read_text() == "precious"
    if name == "log.jsonl":  # the log: replaced by a file of its own
        assert not (run / name).is_symlink() and len((run / name).read_text().splitlines()) == 3


def test_atomic_writes_replace_a_planted_link_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "jtt_errors.json").symlink_to(victim)  # what JTT writes with save_json
    storage.save_json({"error_indices": [1]}, tmp_path / "jtt_errors.json")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "jtt_errors.json").is_symlink()
