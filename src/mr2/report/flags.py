"""Warnings a report raises about its own runs, so that a user learns them from the report:
training that ended near chance, an MR² representation term that dominates the gradient,
and MR² margins that favour the easy classes."""

from __future__ import annotations

import numpy as np

from mr2.losses.registry import collapse_advice
from mr2.records.result import CHANCE_FACTOR
from mr2.report.diagnostics import correlations
from mr2.report.summary import ReportSummary


def near_chance(summary: ReportSummary) -> list[str]:
    """Runs whose final training accuracy is below ``CHANCE_FACTOR`` x chance (1 / K)."""
    k = len(summary.class_names)
    found = []
    for run in summary.runs:
        acc = run.final_train_acc
        if acc is not None and acc < CHANCE_FACTOR / k:
            loss = run.config.get("loss", {}).get("name", "")  # config.toml as saved
            found.append(
                f"{run.method} seed {run.seed} ended training at {100 * acc:.1f} % "
                f"training accuracy (chance {100 / k:.1f} %): it did not train; "
                f"{collapse_advice(loss if isinstance(loss, str) else '')}."
            )
    return found


def representation_dominates(summary: ReportSummary) -> list[str]:
    """Runs whose MR² representation term sent the features a larger gradient than the
    logit term at the last epoch (``EpochRecord.rep_grad_ratio`` > 1)."""
    return [
        f"{run.method} seed {run.seed}: the representation term's gradient on the "
        f"features is {run.final_rep_grad_ratio:.2f}x the logit term's at the end of "
        "training: it dominates; lower lambda_rep (0.01-0.03 with the scale-free term)."
        for run in summary.runs
        if run.final_rep_grad_ratio is not None and run.final_rep_grad_ratio > 1
    ]


def _applies_margins(summary: ReportSummary, method: str) -> bool:
    """False for runs that record MR²'s margins without dividing logits by them (the
    representation-only ablation, or logit_margins = false)."""
    for run in summary.runs:
        if run.method == method:
            loss = run.config.get("loss", {})  # the run's config.toml as saved: JSON
            if (
                loss.get("name") == "mr2_rep"
                or loss.get("options", {}).get("logit_margins") is False
            ):
                return False
    return True


def margins_favour_easy(summary: ReportSummary) -> list[str]:
    """MR² runs whose final margins rise with the reference's validation accuracy
    (Spearman > 0): the larger margins then go to the easy classes, not the hard ones."""
    ref_val = summary.methods[summary.reference].val_per_class_mean
    if ref_val is None:
        return []
    found = []
    for method, body in summary.methods.items():
        internals = body.internals
        if not internals or not internals.margins or not _applies_margins(summary, method):
            continue
        margins = np.asarray(internals.margins[-1], dtype=float)
        rho = correlations(margins, ref_val).spearman
        if rho == rho and rho > 0:
            found.append(
                f"{method}: the final margins favour the easy classes (Spearman {rho:+.2f} "
                f"between gamma_k and {summary.reference}'s validation accuracy, seed "
                f"{internals.seed}): MR² gives its largest margins to classes that are "
                'already easy; margin_direction = "decreasing" (the loss mr2_reversed) '
                "reverses them (in benchmarks/evidence that changed no hard-class result)."
            )
    return found


def check(summary: ReportSummary) -> list[str]:
    """Every warning for the report, in order."""
    return [
        *near_chance(summary),
        *representation_dominates(summary),
        *margins_favour_easy(summary),
    ]
