"""``local``: the runs train here, one after another (the base executor as it is)."""

from __future__ import annotations

from mr2.engine.executors.base import Executor
from mr2.engine.executors.registry import register


@register("local", "here, one run after another")
class LocalExecutor(Executor):
    @staticmethod
    def workers(jobs: int) -> int:
        return 1
