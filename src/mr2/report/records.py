"""The typed records of results.json (``mr2.report.results`` writes them; the schema is in
its docstring): one run's row, one method's summary, the whole summary."""

from __future__ import annotations

from typing import Any, TypedDict


class RunRow(TypedDict):
    """One run in results.json."""

    method: str
    seed: int
    run_dir: str | None
    config: dict[str, Any]
    overall: float
    per_class: list[float]
    val_per_class: list[float] | None
    test_halves: list[list[float]] | None
    support: list[int]
    selected_epoch: int | None
    train_time_s: float | None
    final_train_acc: float | None
    final_rep_grad_ratio: float | None


class MethodSummary(TypedDict):
    """One method's runs pooled over seeds (statistics as ``{"mean", "std", "n"}``)."""

    seeds: list[int]
    summary: dict[str, dict[str, float]]
    per_class_mean: list[float]
    per_class_std: list[float]
    val_per_class_mean: list[float] | None
    test_spread_mean: list[float] | None
    test_norm_sq_mean: list[float] | None
    confusion_sum: list[list[float]]
    internals: dict[str, Any] | None
    vs_reference: dict[str, Any] | None


class _SummaryCore(TypedDict):
    schema: int
    reference: str
    dataset: str
    class_names: list[str]
    ranking: str
    ranking_unbiased: bool
    ranking_folds: dict[str, Any]
    groups: dict[str, list[int]]
    runs: list[RunRow]
    methods: dict[str, MethodSummary]


class ReportSummary(_SummaryCore, total=False):
    """results.json (see the module docstring); ``tuning``, ``missing`` and ``wise`` are
    added by ``mr2.report.build``."""

    tuning: list[dict[str, Any]]
    missing: list[dict[str, Any]]
    not_compared: list[str]  # run folders under a comparison folder that are not part of it
    wise: dict[str, Any]
