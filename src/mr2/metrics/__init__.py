"""Class-wise disparity metrics: per-class accuracy, summaries, uncertainty."""

from mr2.metrics.bootstrap import BootstrapCI, PairedBootstrap, bootstrap_ci, paired_bootstrap
from mr2.metrics.classwise import (
    ClasswiseAccuracy,
    ClasswiseResult,
    accuracy_from_confusion,
    classwise_accuracy,
    confusion_counts,
)
from mr2.metrics.paired import PairedComparison, class_intervals, holm, paired_comparison
from mr2.metrics.summary import DisparitySummary, disparity_summary, split_thirds
from mr2.metrics.uncertainty import (
    MeanStd,
    mean_std,
    min_sign_flip_p,
    seeds_for_power,
    sign_flip_p_value,
    sign_test_p_value,
)

__all__ = [
    "BootstrapCI",
    "ClasswiseAccuracy",
    "ClasswiseResult",
    "DisparitySummary",
    "MeanStd",
    "PairedBootstrap",
    "PairedComparison",
    "accuracy_from_confusion",
    "bootstrap_ci",
    "class_intervals",
    "classwise_accuracy",
    "confusion_counts",
    "disparity_summary",
    "holm",
    "mean_std",
    "min_sign_flip_p",
    "paired_bootstrap",
    "paired_comparison",
    "seeds_for_power",
    "sign_flip_p_value",
    "sign_test_p_value",
    "split_thirds",
]
