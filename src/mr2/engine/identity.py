"""Run identity: which configuration a run directory holds, and who is writing it.

A run's **fingerprint** is a SHA-256 of everything that can change its numbers: the
resolved configuration with every loss and procedure option filled in with its default
(so a changed default is a changed run), the kind of run and the mr2 version. Settings
that only say where files are or how fast things go are left out: ``data.data_dir``,
``data.allow_download``, ``model.cache_dir``, ``train.threads``, ``train.device``,
``train.eval_batch_size``, ``train.keep_logits`` / ``logits_max_mb`` and the whole
``compare`` section (a comparison folds each
method's options into its runs' ``loss`` / ``train`` sections).

``RUN_DIR/run.json`` records the fingerprint and the flat key -> value identity it hashes;
reusing a finished run, resuming a checkpoint or skipping a run in ``mr2 compare`` happens
only when it matches. A per-run lock beside the run directory (``.RUN_NAME.lock`` in its
parent, ``fcntl.flock``: released by the kernel when its process dies, so a killed run never
holds it) keeps two processes from writing one run. The lock file is removed when the lock
is released, and the run directory is created only when the run starts writing, so an
interrupted run leaves no folder that holds nothing but a lock (a killed one leaves the
hidden lock file, which the next run of that directory takes over and removes).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mr2 import backbones, losses
from mr2._version import __version__
from mr2.engine import procedures
from mr2.engine.config import RunConfig, to_dict
from mr2.models import weights
from mr2.records import storage
from mr2.records.result import WeightsInfo
from mr2.records.setting import flatten, neutral_dropped

IGNORED = (
    "data.data_dir",
    "data.allow_download",
    "model.cache_dir",
    "train.threads",
    "train.device",
    "train.eval_batch_size",
    "train.loggers",
    "train.log_every",
    "train.keep_logits",
    "train.logits_max_mb",
)
# the content hash of data.path (a file; a folder: its files' names, sizes and times) and of
# a weights file; runs recorded before these were part of the identity are compared without
DATA_HASH = "data.path_sha256"
WEIGHTS_HASH = "model.weights_sha256"
RECORD = "run.json"
LEGACY_LOCK = ".lock"  # inside the run directory, as mr2 <= 0.10 kept it: ignored
FAILED = "failed.json"  # written by an executor for a run that raised: not part of the run
BESIDE = (LEGACY_LOCK, FAILED)


class RunMismatchError(ValueError):
    """A run directory holds a run of another configuration (or of an unknown one)."""


class RunBusyError(RuntimeError):
    """Another live process holds the run directory's lock."""


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, list, dict))


def _with_defaults(cfg: RunConfig) -> dict[str, Any]:
    """The configuration as a dict, loss and procedure options completed by their defaults."""
    data = to_dict(cfg)
    loss = data["loss"]
    defaults = losses.options(cfg.loss.name) if cfg.loss.name in losses.available() else {}
    loss["options"] = {
        **{k: v for k, v in defaults.items() if _jsonable(v) and k != "validate"},
        **loss["options"],
    }
    if cfg.train.procedure in procedures.PROCEDURES:
        data["train"]["procedure_options"] = {
            **procedures.defaults(cfg.train.procedure),
            **data["train"]["procedure_options"],
        }
    return data


def identity(cfg: RunConfig, kind: str = "train", *, without: tuple[str, ...] = ()) -> dict:
    """The flat key -> value map a run's fingerprint hashes (``without``: more keys to drop,
    e.g. ``("train.seed",)`` to compare the runs of one method across seeds)."""
    data = _with_defaults(cfg)
    data.pop("compare")
    drop = (*IGNORED, *without)
    flat = neutral_dropped({k: v for k, v in flatten(data).items() if k not in drop})
    if cfg.data.path and Path(cfg.data.path).exists() and DATA_HASH not in drop:
        flat[DATA_HASH] = storage.path_sha256(cfg.data.path)  # rewritten at the same path
    started = run_weights(cfg)
    if started.sha256 and WEIGHTS_HASH not in drop:
        flat[WEIGHTS_HASH] = started.sha256
    return {"kind": kind, "mr2_version": __version__, **flat}


def run_weights(cfg: RunConfig) -> WeightsInfo:
    """Where the run's model starts: random, a library's weights or a file (with its hash)."""
    m = cfg.model
    return weights.info(m.name, m.options, backbone=m.name in backbones.BACKBONES)


def fingerprint(ident: dict[str, Any]) -> str:
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every key whose value differs (missing keys shown as unset)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


class State(enum.Enum):
    FRESH = "fresh"  # no directory, or nothing of a run in it
    MATCH = "match"  # a run of this configuration (finished, interrupted or just set up)
    MISMATCH = "mismatch"  # a run of another configuration, or of an unknown one


@dataclass
class Inspection:
    state: State
    ident: dict[str, Any]
    fingerprint: str
    finished: bool = False
    message: str = ""
    foreign: bool = False  # not a run of mr2's (no run.json): never removed, not even on overwrite


def inspect_run(run_dir: Path, cfg: RunConfig, kind: str = "train") -> Inspection:
    """What ``run_dir`` holds relative to ``cfg``; reads only, modifies nothing."""
    run_dir = Path(run_dir)
    ident = identity(cfg, kind)
    fp = fingerprint(ident)
    present = (  # a writer's in-flight temporary file (NAME.<random>.tmp) is not a run yet
        sorted(p.name for p in run_dir.iterdir() if p.name not in BESIDE and p.suffix != ".tmp")
        if run_dir.is_dir()
        else []
    )
    if not present:
        return Inspection(State.FRESH, ident, fp)
    record_path = run_dir / RECORD
    if not record_path.is_file():
        return Inspection(
            State.MISMATCH,
            ident,
            fp,
            message=f"{run_dir} holds {', '.join(present[:5])} but no {RECORD}: not a run "
            "directory of mr2's, so mr2 will not remove it (not even with --overwrite). Write "
            "the run elsewhere (--out), or empty that folder yourself if it is yours to delete",
            foreign=True,
        )
    record = storage.load_json(record_path)
    stored = record.get("identity", {})
    # recorded before the data's or the weights' hash was part of it: compared without
    wanted = {k: v for k, v in ident.items() if k in stored or k not in (DATA_HASH, WEIGHTS_HASH)}
    if record.get("fingerprint") != fp and fingerprint(neutral_dropped(stored)) != fingerprint(
        wanted
    ):
        diff = differences(neutral_dropped(stored), wanted)
        return Inspection(
            State.MISMATCH,
            ident,
            fp,
            message=f"{run_dir} holds a run of another configuration; differing settings:\n  "
            + "\n  ".join(diff or ["(identity record unreadable)"]),
        )
    return Inspection(State.MATCH, ident, fp, finished=(run_dir / "result.json").is_file())


def mismatch_error(found: Inspection) -> RunMismatchError:
    if found.foreign:
        return RunMismatchError(found.message)
    return RunMismatchError(
        f"{found.message}\nTo keep it, write the new run elsewhere (--out); to replace it, "
        "pass --overwrite (the old run is removed only once the new one is set up)."
    )


def check(run_dir: Path, cfg: RunConfig, kind: str = "train", *, overwrite: bool = False):
    """Inspect and raise ``RunMismatchError`` on a mismatch unless ``overwrite``."""
    found = inspect_run(run_dir, cfg, kind)
    if found.state is State.MISMATCH and (found.foreign or not overwrite):
        raise mismatch_error(found)
    return found


def clear(run_dir: Path) -> None:
    """Remove everything of an old run from ``run_dir`` (not ``BESIDE`` files)."""
    for p in Path(run_dir).iterdir():
        if p.name in BESIDE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def write_record(run_dir: Path, found: Inspection) -> None:
    storage.save_json({"fingerprint": found.fingerprint, "identity": found.ident}, run_dir / RECORD)


def lock_path(run_dir: str | Path) -> Path:
    """The lock file of a run directory: ``.NAME.lock`` beside it, in its parent."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f".{run_dir.name}.lock"


class RunLock:
    """Exclusive, non-blocking (or waiting) lock on a run directory; ``with RunLock(d):``.

    The holder removes the lock file before it unlocks it; a process that was waiting on
    the removed file sees that the path no longer names the file it locked and starts
    again, so two processes never hold locks on two files of one path."""

    def __init__(self, run_dir: Path, *, wait: bool = False) -> None:
        self.path = lock_path(run_dir)
        self.wait = wait
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = self._locked()
        while not _names(self.path, fd):  # removed by the holder we waited for: again
            os.close(fd)
            fd = self._locked()
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def _locked(self) -> int:
        """Open (create) the lock file and lock it; ``RunBusyError`` if held elsewhere."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link planted as the lock is refused, never followed and truncated
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as err:
            raise OSError(err.errno, f"cannot write {self.path}: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunBusyError(
                f"{self.path.parent / self.path.name[1:-5]} is being written by another "
                f"process (pid {holder}); wait for it to finish, or use another --out"
            ) from None
        return fd

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # while still locked: see the class docstring
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _names(path: Path, fd: int) -> bool:
    """``path`` still names the file open as ``fd``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        return False
