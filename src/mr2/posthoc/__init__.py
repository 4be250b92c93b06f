"""Post-hoc class offsets fit on validation data after training: ``ClassOffsets`` (fit,
apply, save / load, wrap a model), the fitting core (``fit``) and their use on run folders
(``runs``: ``mr2 posthoc``)."""

from mr2.posthoc.model import OffsetModel
from mr2.posthoc.offsets import ClassOffsets

__all__ = ["ClassOffsets", "OffsetModel"]
