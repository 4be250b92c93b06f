"""The typed records of a report (``mr2.report.results`` builds them; results.json is their
``to_dict``, the one JSON boundary, schema in results.py): one run's row, one method's
summary over seeds, the runs that are missing, the WiSE-FT summary, the whole summary,
and the frontiers against post-hoc offsets (``mr2.report.frontier`` builds those)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mr2.metrics import MeanStd, PairedComparison
from mr2.records.result import WeightsInfo
from mr2.records.selection import Selection
from mr2.records.typed_json import as_dict


@dataclass(frozen=True)
class RunRow:
    """One run."""

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
    weights: WeightsInfo | None = None  # where the model started (engine runs)
    # Spearman of the final MR² margins with the run's validation error per class
    margin_difficulty_spearman: float | None = None


@dataclass(frozen=True)
class Internals:
    """MR²'s margins and spreads per epoch of one run (a method's lowest seed)."""

    seed: int
    epochs: list[int]
    margins: list[list[float]]
    spreads: list[list[float] | None]


@dataclass(frozen=True)
class MethodSummary:
    """One method's runs pooled over seeds; ``summary``: statistic name (``SCALAR_FIELDS``:
    overall, easy, ..., gap) -> mean ± std over seeds, for those defined on every run."""

    seeds: list[int]
    summary: dict[str, MeanStd]
    per_class_mean: list[float]
    per_class_std: list[float]
    val_per_class_mean: list[float] | None
    test_spread_mean: list[float] | None
    test_norm_sq_mean: list[float] | None
    confusion_sum: list[list[float]]
    internals: Internals | None
    vs_reference: PairedComparison | None


@dataclass(frozen=True)
class MissingRun:
    """A run of a comparison without a result: failed (``failed.json``) or not finished."""

    run: str
    method: str | None
    seed: int | None
    run_dir: str
    error: str


@dataclass(frozen=True)
class WiseMethod:
    """One method's WiSE-FT runs: per alpha (as text, e.g. "0.5"), statistic name (overall,
    mean_class, worst_class, hard) -> mean ± std over seeds in %; the alpha each seed
    selected on validation."""

    alphas: dict[str, dict[str, MeanStd]]
    selected: list[float | None]


@dataclass(frozen=True)
class ReportSummary:
    """Everything a report says (results.json). ``tuning``, ``missing``, ``not_compared``
    and ``wise`` are added by ``mr2.report.build`` from the folders beside the runs."""

    schema: int
    reference: str
    dataset: str
    class_names: list[str]
    ranking: str
    ranking_unbiased: bool
    ranking_folds: dict[str, Any]  # mr2.report.ranking.folds_record
    groups: dict[str, list[int]]  # "easy" / "medium" / "hard" for display
    runs: list[RunRow]
    methods: dict[str, MethodSummary]
    tuning: list[Selection] = field(default_factory=list)
    missing: list[MissingRun] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)  # run folders outside the comparison
    wise: dict[str, WiseMethod] = field(default_factory=dict)

    def compared(self) -> list[MethodSummary]:
        """The methods paired with the reference."""
        return [body for body in self.methods.values() if body.vs_reference is not None]

    def to_dict(self) -> dict[str, Any]:
        """results.json ("wise" only with WiSE-FT results)."""
        out = as_dict(self)
        out["tuning"] = [t.to_dict() for t in self.tuning]
        if not self.wise:
            del out["wise"]
        return out


@dataclass(frozen=True)
class FrontierPoint:
    """Test scores (means over seeds, fractions) of offsets fit on validation for the best
    worst class at ``drop`` below each seed's own validation accuracy (None: no offsets)."""

    drop: float | None
    overall: float
    worst: float
    hard: float


@dataclass(frozen=True)
class Gain:
    """Paired differences over seeds (fractions): mean, standard error, seeds up (above
    ``TIE``) and tied (within it), seeds, exact sign-flip p, Holm-adjusted p over the
    table's rows (NaN where the row is no contrast)."""

    mean: float
    se: float
    up: int
    ties: int
    n: int
    p: float
    p_holm: float


@dataclass(frozen=True)
class MatchedSeed:
    """One seed of a matched contrast: both arms' validation and test accuracies."""

    seed: int
    method_val_overall: float
    reference_val_overall: float
    method_test_overall: float
    reference_test_overall: float
    method_test_worst: float
    reference_test_worst: float
    method_test_hard: float
    reference_test_hard: float


@dataclass(frozen=True)
class MatchedRow:
    """One method at one accuracy level against the reference there: the paired gains on
    the test worst class and hard third, with every seed's numbers. ``level``: "own
    accuracy" (the method alone against the reference + offsets at its validation
    accuracy), "lower of the two - 0.5 pt" (both arms with offsets, fit by the same fitter
    at the lower of their two validation accuracies, less the drop), or for the reference's
    own rows "ce - 0.5 pt" (what the fix alone gives). ``note``: why a row repeats another."""

    method: str
    reference: str
    method_offsets: bool
    reference_offsets: bool
    level: str
    per_seed: list[MatchedSeed]
    worst_gain: Gain
    hard_gain: Gain
    # a contrast the report may mark (mr2.report.marks): the method alone at its own
    # accuracy, or both arms with offsets at the lower of their accuracies, where the fits
    # reached the level
    primary: bool = False
    note: str = ""

    def mean(self, arm: str, key: str) -> float:
        """The mean over seeds of ``{arm}_test_{key}`` (arm: method / reference)."""
        values = [getattr(s, f"{arm}_test_{key}") for s in self.per_seed]
        return sum(values) / len(values) if values else float("nan")


@dataclass(frozen=True)
class Frontiers:
    reference: str
    curves: dict[str, list[FrontierPoint]]  # per method, ordered by test overall, no offsets first
    matched: list[MatchedRow]
    lacking: list[str]  # runs without validation and test logits (then nothing is computed)
