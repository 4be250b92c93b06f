"""Collect saved runs and summarise them per method (the ``results.json`` schema).

results.json (schema 1)::

    {"schema": 1, "reference": "ce", "class_names": [...], "groups": {"easy": [...], ...},
     "runs": [{"method", "seed", "run_dir", "config", "overall", "per_class",
               "support", "selected_epoch", "train_time_s"}, ...],
     "methods": {"<method>": {"seeds": [...],
                              "summary": {"<statistic>": {"mean", "std", "n"}, ...},
                              "per_class_mean": [...], "per_class_std": [...],
                              "vs_reference": {paired comparison, "gain_std"} | null,
                              "test_spread_mean", "test_norm_sq_mean": [...] | null,
                              "confusion_sum": [[...]], "internals": {...} | null}},
     "tuning": [selection.json records],
     "wise": {"<method>": {"alphas": {"<alpha>": {"overall" | "mean_class" | "worst_class" |
              "hard": {"mean", "std", "n"}}}, "selected": [alpha per seed]}}  (only with
              WiSE-FT results; accuracies in %, see mr2/report/wise.py)}

Every summary statistic (overall, easy / medium / hard, worst class, ...) is computed per
run with the easy / medium / hard thirds ranked by the reference method's per-class
accuracy averaged over its seeds, then given as mean ± std (ddof = 1) over seeds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from mr2.engine.identity import flatten, neutral_dropped
from mr2.io import load_json
from mr2.metrics import disparity_summary, mean_std, paired_comparison
from mr2.metrics.summary import SCALAR_FIELDS
from mr2.result import RunResult


class RunRow(TypedDict):
    """One run in results.json."""

    method: str
    seed: int
    run_dir: str | None
    config: dict[str, Any]
    overall: float
    per_class: list[float]
    support: list[int]
    selected_epoch: int | None
    train_time_s: float | None


class MethodSummary(TypedDict):
    """One method's runs pooled over seeds (statistics as ``{"mean", "std", "n"}``)."""

    seeds: list[int]
    summary: dict[str, dict[str, float]]
    per_class_mean: list[float]
    per_class_std: list[float]
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
    groups: dict[str, list[int]]
    runs: list[RunRow]
    methods: dict[str, MethodSummary]


class ReportSummary(_SummaryCore, total=False):
    """results.json (see the module docstring); ``tuning``, ``missing`` and ``wise`` are
    added by ``mr2.report.build``."""

    tuning: list[dict[str, Any]]
    missing: list[dict[str, Any]]
    wise: dict[str, Any]


def collect(paths: list[str | Path]) -> list[RunResult]:
    """Every result.json under the given run or comparison directories (sorted); a run
    reached twice (``mr2 report X X``, or a folder and its parent) counts once."""
    found = []
    seen: set[Path] = set()
    missing = [str(p) for p in map(Path, paths) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} does not exist")
    for p in map(Path, paths):
        files = (
            [p]
            if p.is_file()
            else sorted(
                f
                for f in p.rglob("result.json")  # tuning and JTT stage-1 runs are not results
                if "grid" not in f.relative_to(p).parts and "stage1" not in f.relative_to(p).parts
            )
        )
        for f in files:
            if f.resolve() in seen:
                continue
            seen.add(f.resolve())
            found.append(replace(RunResult.from_dict(load_json(f), f), run_dir=str(f.parent)))
    if not found:
        raise FileNotFoundError(f"no result.json under {', '.join(map(str, paths))}")
    return found


def _mean_diagnostic(runs: list[RunResult], key: str) -> list[float] | None:
    values = [r.diagnostics.get(key) for r in runs]
    if any(v is None for v in values):
        return None
    return np.nanmean(np.array(values, dtype=float), axis=0).tolist()


def _internals(run: RunResult) -> dict[str, Any] | None:
    """MR²'s margins and spreads per epoch of one run (its lowest seed), if recorded."""
    hist = [h for h in run.history if h.margins is not None]
    if not hist:
        return None
    return {
        "seed": run.seed,
        "epochs": [h.epoch for h in hist],
        "margins": [h.margins for h in hist],
        "spreads": [h.spreads for h in hist],
    }


def failures(paths: list[str | Path]) -> list[dict[str, Any]]:
    """The runs recorded as failed (``failed.json``) under the given directories: a report
    lists them instead of silently averaging fewer seeds."""
    found = []
    for p in map(Path, paths):
        for f in sorted(p.rglob("failed.json")) if p.is_dir() else []:
            record = load_json(f)
            found.append(
                {
                    "run": record.get("run", str(f.parent)),
                    "method": record.get("method"),
                    "seed": record.get("seed"),
                    "run_dir": str(f.parent),
                    "error": record.get("error", ""),
                }
            )
    return found


def selections(paths: list[str | Path]) -> list[dict[str, Any]]:
    """The tuning records (selection.json) under the given comparison directories."""
    return [
        json.loads(f.read_text())
        for p in map(Path, paths)
        if Path(p).is_dir()
        for f in sorted(Path(p).rglob("selection.json"))
    ]


def _setting(result: RunResult) -> dict[str, Any]:
    """What the runs of one method must share: the run's identity without its seed."""
    ident = result.identity or flatten({k: v for k, v in result.config.items() if k != "compare"})
    ident = neutral_dropped(ident)  # recorded before a key was left out at its neutral value
    return {k: v for k, v in ident.items() if k not in ("train.seed", "config.seed")}


def _test_set(r: RunResult) -> tuple:
    d = r.dataset
    return d.name, d.num_classes, tuple(d.class_names), sum(r.test.support), d.split or "test"


def check_poolable(results: list[RunResult]) -> None:
    """Refuse to average runs that are not seeds of one setting on one test set: every run
    must have the same dataset (name, classes, test split size); within a method the
    settings may differ only in the seed, and each seed appears once."""
    sets = {_test_set(r): r.run_dir for r in results}
    if len(sets) > 1:
        raise ValueError(
            "these runs are on different datasets / test sets and cannot share one report: "
            + "; ".join(f"{s[0]} ({s[1]} classes, {s[3]} {s[4]}) in {d}" for s, d in sets.items())
        )
    for method, runs in _by_method(results).items():
        seeds = [r.seed for r in runs]
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            dirs = [str(r.run_dir) for r in runs if r.seed in twice]
            raise ValueError(
                f"method {method!r} has seed(s) {twice} more than once ({', '.join(dirs)}): "
                "report each comparison separately"
            )
        first = _setting(runs[0])
        for r in runs[1:]:
            other = _setting(r)
            diff = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            if diff:
                raise ValueError(
                    f"runs of method {method!r} differ in more than the seed ({', '.join(diff)}: "
                    f"{runs[0].run_dir} vs {r.run_dir}); they are not seeds of one "
                    "setting. Report them separately"
                )


def _by_method(results: list[RunResult]) -> dict[str, list[RunResult]]:
    by_method: dict[str, list[RunResult]] = {}
    for r in sorted(results, key=lambda r: (r.method, r.seed)):
        by_method.setdefault(r.method, []).append(r)
    return by_method


def _vs_reference(
    rs: list[RunResult], ref_runs: list[RunResult], a_all, b_all, ref_mean
) -> dict[str, Any] | None:
    """Paired comparison with the reference method over the seeds both have."""
    seeds_ref = {r.seed: i for i, r in enumerate(ref_runs)}
    paired = [(i, seeds_ref[r.seed]) for i, r in enumerate(rs) if r.seed in seeds_ref]
    if not paired:
        return None
    a = a_all[[i for i, _ in paired]]
    b = b_all[[j for _, j in paired]]
    vs = asdict(paired_comparison(a, b, reference=ref_mean))
    diff = a - b  # (S, K) paired per-seed differences: the seed-noise band
    vs["gain_std"] = (
        np.nanstd(diff, axis=0, ddof=1) if len(diff) > 1 else np.zeros(diff.shape[1])
    ).tolist()
    return vs


def _method_summary(
    rs: list[RunResult], acc: np.ndarray, ref_mean: np.ndarray, vs: dict[str, Any] | None
) -> MethodSummary:
    per_run = [
        disparity_summary(r.test.per_class, reference=ref_mean, class_counts=r.test.support)
        for r in rs
    ]
    summary = {
        f: asdict(mean_std([getattr(s, f) for s in per_run]))
        for f in SCALAR_FIELDS
        if not any(np.isnan(getattr(s, f)) for s in per_run)
    }
    return {
        "seeds": [r.seed for r in rs],
        "summary": summary,
        "per_class_mean": np.nanmean(acc, axis=0).tolist(),
        "per_class_std": (
            np.nanstd(acc, axis=0, ddof=1) if len(rs) > 1 else np.zeros(acc.shape[1])
        ).tolist(),
        "test_spread_mean": _mean_diagnostic(rs, "test_spread"),
        "test_norm_sq_mean": _mean_diagnostic(rs, "test_norm_sq"),
        "confusion_sum": np.sum([r.test.confusion for r in rs], axis=0).tolist(),
        "internals": _internals(rs[0]),
        "vs_reference": vs,
    }


def _run_row(r: RunResult) -> RunRow:
    return {
        "method": r.method,
        "seed": r.seed,
        "run_dir": r.run_dir,
        "config": r.config,
        "overall": r.test.overall,
        "per_class": r.test.per_class,
        "support": r.test.support,
        "selected_epoch": r.selected_epoch,
        "train_time_s": r.train_time_s,
    }


def summarize(results: list[RunResult], reference: str = "ce") -> ReportSummary:
    check_poolable(results)
    by_method = _by_method(results)
    if reference not in by_method:
        reference = next(iter(by_method))  # no ERM run: rank by the first method
    by_method = {
        reference: by_method[reference],
        **{m: rs for m, rs in by_method.items() if m != reference},
    }
    acc = {m: np.array([r.test.per_class for r in rs], dtype=float) for m, rs in by_method.items()}
    ref_mean = np.nanmean(acc[reference], axis=0)
    methods: dict[str, MethodSummary] = {}
    for m, rs in by_method.items():
        vs = (
            None
            if m == reference
            else _vs_reference(rs, by_method[reference], acc[m], acc[reference], ref_mean)
        )
        methods[m] = _method_summary(rs, acc[m], ref_mean, vs)
    first = results[0]
    return {
        "schema": 1,
        "reference": reference,
        "dataset": first.dataset.name,
        "class_names": first.dataset.class_names,
        "groups": disparity_summary(ref_mean).groups,
        "runs": [_run_row(r) for rs in by_method.values() for r in rs],
        "methods": methods,
    }
