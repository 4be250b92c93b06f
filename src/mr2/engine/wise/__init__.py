"""WiSE-FT (Wortsman et al., 2022): interpolate the weights of the zero-shot model and the
fine-tuned one, ``theta(alpha) = (1 - alpha) theta_zs + alpha theta_ft``, and evaluate every
alpha in one go (``run_wise``; the weights: ``mr2.backbones.wiseft.interpolate``; the
record: ``mr2.records.wise``)."""

from mr2.engine.wise.run import pre_trained, run_wise
from mr2.engine.wise.table import wise_table

__all__ = ["pre_trained", "run_wise", "wise_table"]
