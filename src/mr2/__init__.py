"""mr2: Margin Regularization for class-wise performance disparity Reduction (MR²)."""

from mr2 import distributed, functional, losses, metrics
from mr2._version import __version__
from mr2.losses.mr2 import MR2Loss
from mr2.with_features import with_features

__all__ = [
    "MR2Loss",
    "__version__",
    "distributed",
    "functional",
    "losses",
    "metrics",
    "with_features",
]
