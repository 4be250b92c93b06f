"""How a comparison's runs are executed: the executor, the run options, the log and the
failures met so far."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mr2.engine import executors
from mr2.engine.progress import RunProgress
from mr2.records.result import RunResult


class RunsFailed(RuntimeError):
    """Some runs of a comparison failed (each recorded in its RUN/failed.json); the others
    finished. ``failures``: (run directory, error) pairs."""

    def __init__(self, failures: list[tuple[Path, str]]) -> None:
        self.failures = failures
        lines = "\n  ".join(f"{d}: {e}" for d, e in failures)
        super().__init__(
            f"{len(failures)} run(s) failed (details in each failed.json); re-run the same "
            f"command to retry them, finished runs are kept:\n  {lines}"
        )


@dataclass
class Orchestra:
    """How a comparison's runs are executed: the executor, the run options, the log and the
    failures met so far."""

    executor: executors.Executor
    options: executors.Options
    log: Any = print
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def run(self, jobs: list[executors.Job]) -> list[RunResult | None]:
        """Train every job (results in job order, None for a failed run). A run another
        process holds (``mr2 compare`` twice on one OUT) is awaited at the end, so two
        processes share the work and no run is trained twice."""
        progress = RunProgress([j.label for j in jobs], self.executor.jobs, self.log)
        outcomes = self.executor.run(jobs, self.options, progress)
        waiting = replace(self.options, resume=True, overwrite=False, wait=True)
        for i, outcome in enumerate(outcomes):
            if outcome.status == "busy":
                self.log(f"{jobs[i].label}: trained by another process, waiting for it")
                outcomes[i] = executors.run_job(jobs[i], waiting)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.status != "done":
                self.failures.append((job.run_dir, outcome.error))
        return [o.result if o.status == "done" else None for o in outcomes]
