"""The configuration reference (docs/config.md), generated from ``mr2.engine.config``: every
section and key with its type, default and the comment that documents it in the source.

    python -m mr2.engine.config_reference > docs/config.md

``tests/test_docs.py`` checks that the committed page is what this prints.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any, get_type_hints

from mr2 import backbones, models
from mr2 import data as mr2_data
from mr2.engine import config, executors, loggers, procedures, schedule
from mr2.losses import registry as loss_registry


def _comments(cls: type) -> dict[str, str]:
    """Each field's documentation: the comment lines above it and the one after it."""
    lines = inspect.getsource(cls).splitlines()
    out: dict[str, str] = {}
    above: list[str] = []
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("# "))
            continue
        if ":" in text and not text.startswith(('"', "@", "def ")):
            name = text.split(":")[0].strip()
            after = text.split("  # ", 1)[1] if "  # " in text else ""
            out[name] = " ".join([*above, after]).strip()
        above = []
    return out


def _type_name(hint: Any) -> str:
    name = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
    return name.replace("|", "or")


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    return f"`{json.dumps(value)}`"


def section(name: str, cls: type) -> str:
    hints, notes = get_type_hints(cls), _comments(cls)
    rows = [f"## [{name}]", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(cls):
        meaning = notes.get(field.name, "").replace("|", "\\|")
        rows.append(
            f"| `{name}.{field.name}` | {_type_name(hints[field.name])} | {_default(field)} "
            f"| {meaning} |"
        )
    return "\n".join(rows)


def reference() -> str:
    hints = get_type_hints(config.RunConfig)
    parts = [
        "# Configuration reference",
        "",
        "Every key of a run's or comparison's TOML file (`mr2 train --config`, `mr2 compare "
        "--config`, `--set section.key=value`), generated from `mr2.engine.config` "
        "(`python -m mr2.engine.config_reference`). Names of datasets, models, losses, "
        "procedures, executors and loggers, and their options, are checked before anything "
        "trains (`mr2 compare --check`).",
    ]
    for field in dataclasses.fields(config.RunConfig):
        parts += ["", section(field.name, hints[field.name])]
    return "\n".join([*parts, "", names()]) + "\n"


def names() -> str:
    """The names each ``*.name`` key (and the comparison's methods) accepts."""
    kinds = [
        ("`data.name`", mr2_data.LOADERS.describe()),
        ("`model.name` (mr2's models, libraries' and registered ones, and the backbones)",
         {**models.MODELS.describe(), **backbones.BACKBONES.describe()}),
        ("`loss.name`, `compare.methods`", loss_registry.LOSSES.describe()),
        ("`train.procedure` (also run by name in `compare.methods`)",
         procedures.PROCEDURES.describe()),
        ("`compare.executor`", executors.EXECUTORS.describe()),
        ("`train.loggers`", loggers.LOGGERS.describe()),
        ("`optim.name`", schedule.OPTIMISERS.describe()),
        ("`optim.schedule`", schedule.SCHEDULES.describe()),
    ]  # fmt: skip
    out = ["## Names", ""]
    for title, entries in kinds:
        out += [f"**{title}**: " + ", ".join(f"`{n}`" for n in entries), ""]
    return "\n".join(out).rstrip()


if __name__ == "__main__":
    print(reference(), end="")
