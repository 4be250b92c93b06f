"""Training engine: configuration, the training loop, checkpoints, comparisons."""

from mr2.engine.compare import run_compare
from mr2.engine.config import RunConfig
from mr2.engine.config import load as load_config
from mr2.engine.train import train

__all__ = ["RunConfig", "load_config", "run_compare", "train"]
