"""``mr2 posthoc``: class offsets (``mr2.posthoc.ClassOffsets``) fit on each run's kept
validation logits, saved beside the run (``RUN_DIR/offsets-<tag>.json``) and scored before
and after on validation and test. Test labels are only scored, never seen by a fit: the
hard classes of the "hard" objective come from the report's ranking when it is made on
validation (the reference's other seeds), else from the run's own validation recalls."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mr2.metrics.hard import ranked_groups
from mr2.posthoc import ClassOffsets
from mr2.posthoc.fit import Scores, scores
from mr2.records.logits import HOW_TO_GET, RunLogits, has_logits, load_logits, owner_of_result
from mr2.records.result import RunResult
from mr2.records.storage import save_json, save_text
from mr2.records.typed_json import as_dict
from mr2.report.ranking import report_ranking
from mr2.report.results import collect
from mr2.report.tables import cell


@dataclass(frozen=True)
class SplitChange:
    """Overall, worst class and hard-class mean (fractions) without and with offsets."""

    overall: tuple[float, float]
    worst: tuple[float, float]
    hard: tuple[float, float]


@dataclass(frozen=True)
class PosthocRow:
    method: str
    seed: int
    run_dir: str
    offsets_file: str
    hard_classes: list[int]
    hard_source: str  # "ranking on validation (...)" or "the run's own validation"
    val: SplitChange
    test: SplitChange
    warnings: list[str]


def tag(objective: str, tradeoff: float | None, min_overall: float | None) -> str:
    """The offsets file's name part: objective and setting."""
    if min_overall is not None:
        return f"{objective}-min{min_overall:g}"
    return objective if tradeoff is None else f"{objective}-t{tradeoff:g}"


def _change(before: Scores, after: Scores) -> SplitChange:
    return SplitChange(
        (before.overall, after.overall), (before.worst, after.worst), (before.hard, after.hard)
    )


def hard_sets(runs: list[RunResult], reference: str | None) -> dict[str, tuple[list[int], str]]:
    """Per run folder: the hard classes and where they were ranked (never on test)."""
    by_method: dict[str, list[RunResult]] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(r)
    ref = reference if reference in by_method else None
    ranking = report_ranking(by_method, ref) if ref else None
    out = {}
    for r in runs:
        if ranking is not None and ranking.source.startswith("val"):
            fold = ranking.folds_for(r.seed)[0]
            hard = ranked_groups(fold.rank, ranking.fraction)["hard"]
            out[str(r.run_dir)] = (sorted(hard), f"{ref}'s validation ({ranking.source})")
        else:
            out[str(r.run_dir)] = ([], "the run's own validation (bottom third)")
    return out


def fit_runs(
    paths: list[str | Path],
    *,
    objective: str = "worst",
    tradeoff: float | None = None,
    min_overall: float | None = None,
    reference: str | None = "ce",
    out_dir: str | Path | None = None,
) -> list[PosthocRow]:
    """Fit offsets on every run's validation logits under ``paths`` (runs or
    comparisons); write each run's offsets beside it and ``posthoc.json`` / ``posthoc.md``
    into ``out_dir`` (default: the first path). Nothing is written when a run lacks logits."""
    runs = collect(paths)
    lacking = [str(r.run_dir) for r in runs if not has_logits(r.run_dir or "")]
    if lacking:
        raise FileNotFoundError(
            f"{len(lacking)} run(s) kept no logits: {', '.join(lacking[:5])}"
            f"{' ...' if len(lacking) > 5 else ''}; {HOW_TO_GET}"
        )
    hard_sets_ = hard_sets(runs, reference)
    fits = []  # every run is fit before anything is written
    for r in runs:
        kept = load_logits(r.run_dir or "", owner_of_result(r))
        if kept.val is None or kept.test is None:
            raise ValueError(f"{r.run_dir}: offsets need validation and test logits")
        hard, source = hard_sets_[str(r.run_dir)]
        with warnings.catch_warnings():  # said per run in the table's notes instead
            warnings.simplefilter("ignore", UserWarning)
            fitted = ClassOffsets(
                objective, tradeoff=tradeoff, min_overall=min_overall, hard_classes=hard or None
            ).fit(kept.val.logits.astype(np.float32), kept.val.labels)
        fits.append((r, kept, fitted, source))
    name = tag(objective, tradeoff, min_overall)
    rows = [_row(r, kept, fitted, name, source) for r, kept, fitted, source in fits]
    _write(rows, Path(out_dir or paths[0]), name)
    return rows


def _row(r: RunResult, kept: RunLogits, fitted: ClassOffsets, name: str, source: str) -> PosthocRow:
    assert kept.test is not None and fitted.offsets is not None
    path = Path(r.run_dir or "") / f"offsets-{name}.json"
    fitted.save(path)
    z = torch.from_numpy(kept.test.logits.astype(np.float32))
    y = torch.from_numpy(kept.test.labels)
    k = z.shape[1]
    hard = fitted.hard_mask(k)
    test = _change(scores(z, y, torch.zeros(k), hard), scores(z, y, fitted.offsets, hard))
    assert fitted.before is not None and fitted.after is not None
    return PosthocRow(
        r.method, r.seed, str(r.run_dir), str(path), hard.nonzero().flatten().tolist(), source,
        _change(fitted.before, fitted.after), test, fitted.warnings,
    )  # fmt: skip


def _pair(values: tuple[float, float]) -> str:
    a, b = (100 * v for v in values)
    return f"{a:.2f} -> {b:.2f} ({b - a:+.2f})"


def table(rows: list[PosthocRow]) -> str:
    """Markdown: each run's overall, worst class and hard classes before -> after."""
    head = (
        "| method | seed | val overall | val worst | val hard | test overall | test worst "
        "| test hard |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for row in rows:
        cells = [
            _pair(getattr(s, m)) for s in (row.val, row.test) for m in ("overall", "worst", "hard")
        ]
        lines.append(f"| {cell(row.method)} | {row.seed} | " + " | ".join(cells) + " |")
    said = [f"- {r.method} seed {r.seed}: {w}" for r in rows for w in r.warnings]
    return "\n".join(lines + (["", "Warnings:", *said] if said else []))


def _write(rows: list[PosthocRow], out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_json({"offsets": name, "runs": [as_dict(r) for r in rows]}, out / f"posthoc-{name}.json")
    sources = sorted({r.hard_source for r in rows})
    text = [
        f"# Post-hoc class offsets ({name}), fit on validation, scored on test",
        "",
        "Accuracy in %, before -> after (change). Hard classes ranked on "
        + "; ".join(sources)
        + ". Offsets saved beside each run.",
        "",
        table(rows),
        "",
    ]
    save_text("\n".join(text), out / f"posthoc-{name}.md")
