"""Progress output: a one-line bar with loss, accuracy and ETA on a terminal, nothing per
step otherwise; and a JSON-lines log with one record per epoch."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO


class ProgressBar:
    def __init__(
        self,
        total: int,
        prefix: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.prefix, self.start, self.n = total, prefix, time.time(), 0

    def update(self, **metrics: float) -> None:
        self.n += 1
        if not self.enabled:
            return
        elapsed = time.time() - self.start
        eta = elapsed / self.n * (self.total - self.n)
        width = 24
        filled = int(width * self.n / max(1, self.total))
        stats = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.stream.write(
            f"\r{self.prefix} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.n}/{self.total} {stats} eta {eta:4.0f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class JsonlLog:
    """Append-only JSON lines; each line is flushed, so a crash keeps every finished epoch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the log with ``records`` (on resume: the checkpointed epochs)."""
        self.path.write_text("".join(json.dumps(r) + "\n" for r in records))

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
