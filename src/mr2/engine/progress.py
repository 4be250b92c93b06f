"""Progress output: a tqdm bar with loss, accuracy, learning rate and ETA on a terminal, a
line every N steps elsewhere; a comparison's per-run progress; and a JSON-lines log with
one record per epoch."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from mr2.records import storage


class StepProgress:
    """A training epoch's progress. On a terminal: a tqdm bar with loss, accuracy, learning
    rate and ETA; elsewhere (a log file, a pool worker): one line every ``every`` steps
    with the same numbers and the elapsed time. ``due(step)`` says when the caller should
    read the numbers (one host sync), so a disabled progress costs nothing."""

    def __init__(
        self,
        total: int,
        prefix: str,
        *,
        every: int,
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.enabled = True if enabled is None else enabled
        self.total, self.prefix, self.every, self.start = total, prefix, every, time.time()
        self.bar = None
        if self.enabled and self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=prefix, file=self.stream, leave=False)

    def due(self, step: int) -> bool:
        """Whether step ``step`` (0-based) reports: every step's bar moves, numbers every
        ``every`` steps and at the last."""
        return self.enabled and ((step + 1) % self.every == 0 or step + 1 == self.total)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def report(self, step: int, **metrics: float) -> None:
        stats = {k: f"{v:.4g}" for k, v in metrics.items()}
        if self.bar is not None:
            self.bar.set_postfix(stats, refresh=False)
            return
        text = " ".join(f"{k} {v}" for k, v in stats.items())
        elapsed = time.time() - self.start
        self.stream.write(f"{self.prefix} step {step + 1}/{self.total} {text} ({elapsed:.1f} s)\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class JsonlLog:
    """Append-only JSON lines; each line is flushed, so a crash keeps every finished epoch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        # O_NOFOLLOW: a link planted as the log is refused, never followed to its target
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as err:
            raise OSError(err.errno, f"cannot append to {self.path}: {err.strerror} "
                          "(a symbolic link there is refused)") from err  # fmt: skip
        with os.fdopen(fd, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the log with ``records`` (on resume: the checkpointed epochs): written
        aside and renamed over it, so a link there is replaced, not followed."""
        storage.save_text("".join(json.dumps(r) + "\n" for r in records), self.path)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class RunProgress:
    """A comparison's progress: one line per started and per finished run, with its wall
    time, the runs left and an ETA from the runs finished so far (runs reused from an
    earlier invocation do not count towards it). Called as ``progress(i, outcome)``, with
    ``outcome`` None when run ``i`` starts."""

    def __init__(self, labels: list[str], parallel: int, log=print) -> None:
        self.labels, self.parallel, self.log = labels, max(1, parallel), log
        self.running = self.finished = 0
        self.times: list[float] = []

    def __call__(self, i: int, outcome: Any) -> None:
        total = len(self.labels)
        if outcome is None:
            self.running += 1
            self.log(f"[start] {self.labels[i]} ({self.running} running)")
            return
        self.running -= 1
        self.finished += 1
        left = total - self.finished
        if outcome.reused:
            what = "done earlier, skipped"
        else:
            self.times.append(outcome.seconds)
            what = f"{outcome.status} in {outcome.seconds:.1f} s"
        eta = ""
        if self.times and left:
            seconds = sum(self.times) / len(self.times) * left / min(self.parallel, left)
            eta = f", ETA {_duration(seconds)}"
        error = f": {outcome.error}" if outcome.status == "failed" else ""
        self.log(f"[{self.finished}/{total}] {self.labels[i]} {what}{error}; {left} left{eta}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
