"""mr2: Margin Regularization for class-wise performance disparity Reduction (MR²)."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from mr2 import distributed, functional, losses, metrics
from mr2.losses.mr2 import MR2Loss
from mr2.with_features import with_features

__all__ = ["MR2Loss", "distributed", "functional", "losses", "metrics", "with_features"]
try:
    __version__ = _version("mr2")
except PackageNotFoundError:  # pragma: no cover - a source tree without installation
    __version__ = "0+unknown"
