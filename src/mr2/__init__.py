"""mr2: Margin Regularization for class-wise performance disparity Reduction (MR²)."""

from mr2 import distributed, functional
from mr2.mr2_loss import MR2Loss

__all__ = ["MR2Loss", "distributed", "functional"]
__version__ = "0.1.0"
