"""A run's settings as flat keys: what the engine fingerprints and what a report compares
between the seeds of one method. Below both (the report must not import the engine)."""

from __future__ import annotations

from typing import Any

# Keys added after runs were first fingerprinted, with the value that does what runs did
# before the key existed: at that value the key is left out of the identity, so adding a
# feature does not orphan every earlier run; any other value is part of it as usual.
NEUTRAL = {
    "train.amp_dtype": "auto",
    "data.autoaugment": False,
    "train.compile": False,
    "train.channels_last": False,
    "data.split_follows_seed": False,
}


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"section.key.sub": value} (lists kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def neutral_dropped(ident: dict[str, Any]) -> dict[str, Any]:
    """A stored identity as this version writes it: keys at their ``NEUTRAL`` value left out
    (a run recorded while such a key was still fingerprinted matches its own config)."""
    return {k: v for k, v in ident.items() if not (k in NEUTRAL and v == NEUTRAL[k])}
