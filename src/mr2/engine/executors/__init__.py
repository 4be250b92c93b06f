"""Where a comparison's runs train: here one after another (``local``), on a pool of worker
processes (``pool``), as Ray tasks (``ray``) or as SLURM jobs through submitit (``slurm``).

Every executor runs the same ``run_job`` on the same ``Job`` and hands back the same
``Outcome``: a run is trained by ``train`` wherever it runs, so its numbers do not depend on
the executor (on CPU, with ``train.threads`` fixed, they are equal). A run that raises is
recorded in ``RUN/failed.json`` (the error, its traceback and the tail of the run's log)
and does not stop the others; a run whose directory another process holds is reported
``busy`` and awaited at the end by the caller. Nothing here schedules: the pool is
``concurrent.futures``, the cluster engines are Ray's and submitit's own.
"""

from mr2.engine.executors import local, pool, ray_tasks, slurm  # noqa: F401 (registration)
from mr2.engine.executors.base import (
    FAILED,
    Callback,
    Executor,
    Job,
    Options,
    Outcome,
    brief,
    record_failure,
    run_job,
)
from mr2.engine.executors.registry import EXECUTORS, available, create, problems, register
from mr2.engine.executors.slurm import slurm_parameters

__all__ = [
    "EXECUTORS",
    "FAILED",
    "Callback",
    "Executor",
    "Job",
    "Options",
    "Outcome",
    "available",
    "brief",
    "create",
    "problems",
    "record_failure",
    "register",
    "run_job",
    "slurm_parameters",
]
