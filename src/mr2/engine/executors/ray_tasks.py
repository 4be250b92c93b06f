"""``ray``: each run a Ray task with its resources (extra ``cluster``)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from mr2.engine.executors.base import Callback, Executor, Job, Options, Outcome, run_job
from mr2.engine.executors.registry import register


@register("ray", "each run a Ray task with its resources", needs="ray")
class RayExecutor(Executor):
    """Each run a Ray task with its resources (option ``resources``: num_cpus, default
    ``train.threads`` or 1; num_gpus, default 1 on CUDA runs, and any other Ray task
    option), on the cluster at option ``address`` or a local Ray started on demand (and
    shut down after)."""

    OPTIONS: ClassVar[dict[str, str]] = {
        "address": 'a running Ray cluster, e.g. "auto"; none: a local Ray started on demand',
        "resources": "each run's Ray task options, e.g. {num_cpus = 4, num_gpus = 1}",
    }

    @classmethod
    def problems(cls, options: dict[str, Any]) -> list[str]:
        found = Executor.problems.__func__(cls, options)  # type: ignore[attr-defined]
        if not isinstance(options.get("address", ""), str):
            found.append(
                f"compare.executor_options.address must be a string, got {options['address']!r}"
            )
        if not isinstance(options.get("resources", {}), dict):
            found.append(
                f"compare.executor_options.resources must be a table, got {options['resources']!r}"
            )
        return found

    def run(self, jobs: list[Job], options: Options, report: Callback) -> list[Outcome]:
        import ray  # extra "cluster"

        started_here = not ray.is_initialized()
        if started_here:
            address = self.options.get("address") or None
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.jobs, include_dashboard=False, log_to_driver=False)
        try:
            task = ray.remote(run_job)
            refs = {}
            for i, job in enumerate(jobs):
                refs[task.options(**self._resources(job)).remote(job, options)] = i
                report(i, None)
            outcomes: list[Outcome | None] = [None] * len(jobs)
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                i = refs[done[0]]
                try:
                    outcomes[i] = ray.get(done[0])
                except Exception as err:  # the task's worker died
                    outcomes[i] = Outcome("failed", error=f"ray task failed: {err}")
                report(i, outcomes[i])
            return [o for o in outcomes if o is not None]
        finally:
            if started_here:
                ray.shutdown()

    def _resources(self, job: Job) -> dict[str, Any]:
        cuda = job.cfg.train.device == "cuda" or (
            job.cfg.train.device == "auto" and torch.cuda.is_available()
        )
        default = {"num_cpus": job.cfg.train.threads or 1, "num_gpus": 1 if cuda else 0}
        return {**default, **self.options.get("resources", {})}
