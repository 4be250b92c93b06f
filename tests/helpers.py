"""A tiny, fast run configuration shared by the engine tests."""

from mr2.engine import config

TINY = {
    "data": {
        "name": "synthetic",
        "options": {"num_classes": 5, "dim": 8, "n_train": 80, "n_test": 40},
    },
    "model": {"name": "mlp", "options": {"width": 32}},
    "train": {"epochs": 2, "batch_size": 32},
}


def tiny_config(**sections):
    """The tiny config; ``section__key=value`` keyword arguments override single keys."""
    cfg = config.from_dict({k: dict(v) for k, v in TINY.items()})
    for key, value in sections.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg
