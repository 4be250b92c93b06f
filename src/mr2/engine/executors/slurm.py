"""``slurm``: each run a SLURM job through submitit (extra ``cluster``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from mr2.engine.executors.base import Callback, Executor, Job, Options, Outcome, run_job
from mr2.engine.executors.registry import register

SLURM_ALIASES = {"partition": "slurm_partition", "time": "timeout_min"}
SUBMITIT_GENERIC = (
    "name",
    "timeout_min",
    "mem_gb",
    "nodes",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "stderr_to_stdout",
)


def slurm_parameters(options: dict[str, Any]) -> dict[str, Any]:
    """``compare.executor_options`` as submitit parameters (``partition`` and ``time`` in
    minutes are accepted as aliases; ``cluster`` picks submitit's backend, e.g. "local" for
    tests)."""
    params = {SLURM_ALIASES.get(k, k): v for k, v in options.items() if k != "cluster"}
    unknown = [
        k
        for k in params
        if k not in SUBMITIT_GENERIC and not k.startswith(("slurm_", "local_", "debug_"))
    ]
    if unknown:
        raise ValueError(
            f"compare.executor_options: unknown setting(s) {unknown}; use submitit's names "
            f"({', '.join(SUBMITIT_GENERIC)}, slurm_*) or partition / time"
        )
    return params


@register("slurm", "each run a SLURM job (one job array) through submitit", needs="submitit")
class SlurmExecutor(Executor):
    """Each run a SLURM job (one job array) through submitit; logs under OUT/slurm/."""

    @staticmethod
    def workers(jobs: int) -> int:
        return jobs  # 0: as many at once as the cluster allows

    @classmethod
    def problems(cls, options: dict[str, Any]) -> list[str]:
        """Options that are neither submitit's parameters nor ``cluster``."""
        try:
            slurm_parameters(options)
        except ValueError as err:
            return [str(err)]
        return []

    def run(self, jobs: list[Job], options: Options, report: Callback) -> list[Outcome]:
        import submitit  # extra "cluster"

        if not jobs:
            return []
        folder = self.out / "slurm"
        executor = submitit.AutoExecutor(folder=folder, cluster=self.options.get("cluster"))
        params = slurm_parameters(self.options)
        if self.jobs:
            params.setdefault("slurm_array_parallelism", self.jobs)
        executor.update_parameters(**{"name": "mr2", **params})
        with executor.batch():
            submitted = [executor.submit(run_job, job, options) for job in jobs]
        for i in range(len(jobs)):
            report(i, None)
        outcomes: list[Outcome | None] = [None] * len(jobs)
        for i in _as_done(submitted):
            try:
                outcomes[i] = submitted[i].result()
            except Exception as err:  # the job itself failed (time limit, node failure)
                outcomes[i] = Outcome("failed", error=f"slurm job failed: {err}")
            report(i, outcomes[i])
        return [o for o in outcomes if o is not None]


def _as_done(submitted: list[Any], poll: float = 0.5) -> Iterator[int]:
    left = set(range(len(submitted)))
    while left:
        finished = [i for i in sorted(left) if submitted[i].done()]
        yield from finished
        left -= set(finished)
        if left and not finished:
            time.sleep(poll)
