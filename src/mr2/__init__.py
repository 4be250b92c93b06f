"""mr2: Margin Regularization for class-wise performance disparity Reduction (MR²)."""

from mr2 import distributed, functional, losses, metrics
from mr2.losses.mr2 import MR2Loss
from mr2.with_features import with_features

__all__ = ["MR2Loss", "distributed", "functional", "losses", "metrics", "with_features"]
__version__ = "0.1.0"
