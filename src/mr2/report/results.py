"""Collect saved runs and summarise them per method (the ``results.json`` schema).

results.json (schema 2; 1 held paired-comparison fields the report never marked)::

    {"schema": 2, "reference": "ce", "class_names": [...], "ranking": "ranked on ...",
     "ranking_unbiased": true, "ranking_folds": {"source", "default", "<seed>": [folds]},
     "groups": {"easy": [...], ...},
     "runs": [{"method", "seed", "run_dir", "config", "overall", "per_class",
               "support", "selected_epoch", "train_time_s"}, ...],
     "methods": {"<method>": {"seeds": [...],
                              "summary": {"<statistic>": {"mean", "std", "n"}, ...},
                              "per_class_mean": [...], "per_class_std": [...],
                              "vs_reference": {paired comparison} | null,
                              "test_spread_mean", "test_norm_sq_mean": [...] | null,
                              "confusion_sum": [[...]], "internals": {...} | null}},
     "tuning": [selection.json records],
     "wise": {"<method>": {"alphas": {"<alpha>": {"overall" | "mean_class" | "worst_class" |
              "hard": {"mean", "std", "n"}}}, "selected": [alpha per seed]}}  (only with
              WiSE-FT results; accuracies in %, see mr2/report/wise.py)}

Every summary statistic (overall, easy / medium / hard, worst class, ...) is computed per
run, then given as mean ± std (ddof = 1) over seeds. Easy / medium / hard are ranked where
they are not scored (``mr2.metrics.hard``): the run of seed s on the reference method's
validation accuracies of its other seeds, else on cross-fitted test halves, else (old runs
with test scores only) on the reference's other seeds' test accuracies; ``ranking`` in
results.json says which, and "groups" are the ones for display (all reference seeds).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from mr2.comparison import read_manifest
from mr2.metrics import PairedComparison, disparity_summary, mean_std, paired_comparison
from mr2.metrics.hard import HardRanking, display_groups, group_levels
from mr2.metrics.summary import SCALAR_FIELDS
from mr2.records.result import RunResult
from mr2.records.selection import Selection, read_selection
from mr2.records.setting import flatten, neutral_dropped
from mr2.records.storage import load_json
from mr2.report.diagnostics import correlations
from mr2.report.membership import members, result_files
from mr2.report.ranking import evidence, folds_record, report_ranking
from mr2.report.summary import Internals, MethodSummary, MissingRun, ReportSummary, RunRow


def collect(paths: list[str | Path]) -> list[RunResult]:
    """Every result.json under the given run or comparison directories (sorted); a run
    reached twice (``mr2 report X X``, or a folder and its parent) counts once."""
    found = []
    seen: set[Path] = set()
    missing = [str(p) for p in map(Path, paths) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} does not exist")
    for p in map(Path, paths):
        files = [p] if p.is_file() else members(p, result_files(p))
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
    mean: list[float] = np.nanmean(np.array(values, dtype=float), axis=0).tolist()
    return mean


def _internals(run: RunResult) -> Internals | None:
    """MR²'s margins and spreads per epoch of one run (its lowest seed), if recorded."""
    hist = [h for h in run.history if h.margins is not None]
    if not hist:
        return None
    margins = [h.margins for h in hist if h.margins is not None]
    return Internals(run.seed, [h.epoch for h in hist], margins, [h.spreads for h in hist])


def failures(paths: list[str | Path]) -> list[MissingRun]:
    """The runs recorded as failed (``failed.json``) under the given directories: a report
    lists them instead of silently averaging fewer seeds."""
    found = []
    for p in map(Path, paths):
        for f in members(p, sorted(p.rglob("failed.json"))) if p.is_dir() else []:
            if (f.parent / "result.json").is_file():  # retried since, and finished
                continue
            record = load_json(f)
            found.append(  # failed.json: the JSON boundary
                MissingRun(
                    str(record.get("run", f.parent)),
                    record.get("method"),
                    record.get("seed"),
                    str(f.parent),
                    str(record.get("error", "")),
                )
            )
    return found


def selections(paths: list[str | Path]) -> list[Selection]:
    """The tuning records (selection.json) under the given comparison directories."""
    found = []
    for p in (Path(p) for p in paths if Path(p).is_dir()):
        manifest = read_manifest(p)
        for f in sorted(p.rglob("selection.json")):
            record = read_selection(f)
            if manifest is None or record.method in manifest.methods:
                found.append(record)
    return found


def _setting(result: RunResult) -> dict[str, Any]:
    """What the runs of one method must share: the run's identity without its seed."""
    ident = result.identity or flatten({k: v for k, v in result.config.items() if k != "compare"})
    ident = neutral_dropped(ident)  # recorded before a key was left out at its neutral value
    return {k: v for k, v in ident.items() if k not in ("train.seed", "config.seed")}


def _test_set(r: RunResult) -> tuple[str, int, tuple[str, ...], int, str]:
    d = r.dataset
    return d.name, d.num_classes, tuple(d.class_names), sum(r.test.support), d.split or "test"


RECORD_HINT = (
    ". A run recorded with record_run shares a report with mr2's own runs when it names the "
    "same dataset, classes and test split: record_run(..., config={'dataset': NAME}, "
    "class_names=NAMES) with the engine runs' data.name and class names, scored on the "
    "same test images"
)


def check_poolable(results: list[RunResult]) -> None:
    """Refuse to average runs that are not seeds of one setting on one test set: every run
    must have the same dataset (name, classes, test split size); within a method the
    settings may differ only in the seed, and each seed appears once."""
    sets = {_test_set(r): r.run_dir for r in results}
    if len(sets) > 1:
        recorded = any(r.source == "record_run" for r in results)
        raise ValueError(
            "these runs are on different datasets / test sets and cannot share one report: "
            + "; ".join(f"{s[0]} ({s[1]} classes, {s[3]} {s[4]}) in {d}" for s, d in sets.items())
            + (RECORD_HINT if recorded else "")
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
    rs: list[RunResult], ref_runs: list[RunResult], ranking: HardRanking
) -> PairedComparison | None:
    """Paired comparison with the reference method over the seeds both have."""
    by_seed = {r.seed: r for r in ref_runs}
    paired = [(r, by_seed[r.seed]) for r in rs if r.seed in by_seed]
    if not paired:
        return None
    return paired_comparison(
        [evidence(a) for a, _ in paired],
        [evidence(b) for _, b in paired],
        ranking=ranking,
        seeds=[a.seed for a, _ in paired],
    )


def _run_summary(r: RunResult, ranking: HardRanking) -> dict[str, float]:
    """The run's summary statistics with easy / medium / hard from ``ranking``."""
    s = asdict(disparity_summary(r.test.per_class, class_counts=r.test.support))
    return {**s, **group_levels(ranking, evidence(r), r.seed)}


def _method_summary(
    rs: list[RunResult], acc: np.ndarray, ranking: HardRanking, vs: PairedComparison | None
) -> MethodSummary:
    per_run = [_run_summary(r, ranking) for r in rs]
    summary = {
        f: mean_std([s[f] for s in per_run])
        for f in SCALAR_FIELDS
        if not any(np.isnan(s[f]) for s in per_run)
    }
    return MethodSummary(
        seeds=[r.seed for r in rs],
        summary=summary,
        per_class_mean=np.nanmean(acc, axis=0).tolist(),
        per_class_std=(
            np.nanstd(acc, axis=0, ddof=1) if len(rs) > 1 else np.zeros(acc.shape[1])
        ).tolist(),
        val_per_class_mean=_val_mean(rs),
        test_spread_mean=_mean_diagnostic(rs, "test_spread"),
        test_norm_sq_mean=_mean_diagnostic(rs, "test_norm_sq"),
        confusion_sum=np.sum([r.test.confusion for r in rs], axis=0).tolist(),
        internals=_internals(rs[0]),
        vs_reference=vs,
    )


def _val_mean(rs: list[RunResult]) -> list[float] | None:
    if any(r.val is None for r in rs):
        return None
    mean: list[float] = np.nanmean([r.val.per_class for r in rs if r.val], axis=0).tolist()
    return mean


def margin_difficulty(r: RunResult) -> float | None:
    """Spearman correlation over classes of the run's final MR² margins with its held-out
    difficulty (validation error of the selected epoch): > 0 when the margins follow
    difficulty, < 0 when they favour the easy classes; None without margins or validation."""
    margins = next((h.margins for h in reversed(r.history) if h.margins is not None), None)
    if margins is None or r.val is None:
        return None
    rho = correlations(margins, 1.0 - np.asarray(r.val.per_class, dtype=float)).spearman
    return None if rho != rho else rho


def _run_row(r: RunResult) -> RunRow:
    return RunRow(
        method=r.method,
        seed=r.seed,
        run_dir=r.run_dir,
        config=r.config,
        overall=r.test.overall,
        per_class=r.test.per_class,
        val_per_class=r.val.per_class if r.val else None,
        test_halves=r.test.halves,
        support=r.test.support,
        selected_epoch=r.selected_epoch,
        train_time_s=r.train_time_s,
        final_train_acc=r.history[-1].train_acc if r.history else None,
        final_rep_grad_ratio=r.history[-1].rep_grad_ratio if r.history else None,
        weights=r.weights,
        margin_difficulty_spearman=margin_difficulty(r),
    )


def summarize(results: list[RunResult], reference: str | None = "ce") -> ReportSummary:
    """Pool the runs per method against ``reference`` (None: "ce", else the first method
    by name; a named reference without runs is an error)."""
    check_poolable(results)
    by_method = _by_method(results)
    if reference is None:
        reference = "ce" if "ce" in by_method else next(iter(by_method))
    if reference not in by_method:
        raise ValueError(
            f"reference method {reference!r} has no run here; methods: "
            f"{', '.join(sorted(by_method))} (choose one with --reference)"
        )
    by_method = {
        reference: by_method[reference],
        **{m: rs for m, rs in by_method.items() if m != reference},
    }
    ranking = report_ranking(by_method, reference)
    acc = {m: np.array([r.test.per_class for r in rs], dtype=float) for m, rs in by_method.items()}
    methods: dict[str, MethodSummary] = {}
    for m, rs in by_method.items():
        vs = None if m == reference else _vs_reference(rs, by_method[reference], ranking)
        methods[m] = _method_summary(rs, acc[m], ranking, vs)
    first = results[0]
    return ReportSummary(
        schema=2,
        reference=reference,
        dataset=first.dataset.name,
        class_names=first.dataset.class_names,
        ranking=ranking.label,
        ranking_unbiased=ranking.unbiased,
        ranking_folds=folds_record(ranking),
        groups=display_groups(ranking),
        runs=[_run_row(r) for rs in by_method.values() for r in rs],
        methods=methods,
    )
