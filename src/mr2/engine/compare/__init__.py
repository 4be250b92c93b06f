"""Methods x seeds: one run per pair under OUT/<method>/seed<k>, resumable (finished runs
are skipped, interrupted ones continue from their checkpoint), trained by the executor the
config names (``executors``): every tuning run first, all at once, then the selected
settings on all seeds. A failed run is recorded and the others go on."""

from mr2.engine.compare.checks import check_compare, executor_problems, preflight
from mr2.engine.compare.orchestra import Orchestra, RunsFailed
from mr2.engine.compare.plan import grid_points, methods, planned_runs, point_label, run_config
from mr2.engine.compare.runner import run_compare

__all__ = [
    "Orchestra",
    "RunsFailed",
    "check_compare",
    "executor_problems",
    "grid_points",
    "methods",
    "planned_runs",
    "point_label",
    "preflight",
    "run_compare",
    "run_config",
]
