"""Reading a configuration's keys into its dataclasses (``apply``): every section and key
known, every value of its annotated type, keys that moved refused with their new spelling
(``MOVED``), and a suggestion for a misspelt or misplaced key (``train.lr`` ->
``optim.lr``). ``mr2.engine.config`` holds the dataclasses and the files."""

from __future__ import annotations

import dataclasses
import difflib
import types
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def _check_type(key: str, value: Any, hint: Any) -> Any:
    origin = get_origin(hint) or hint
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin in (dict, list):
        if not isinstance(value, origin):
            raise ValueError(f"config key {key}: expected a {origin.__name__}, got {value!r}")
        if origin is list and get_args(hint):
            return [_check_type(f"{key}[{i}]", v, get_args(hint)[0]) for i, v in enumerate(value)]
        return value
    if origin is Any:
        return value
    if origin is types.UnionType:
        for option in get_args(hint):
            if isinstance(value, option) and (option is bool or not isinstance(value, bool)):
                return value
        names = " or ".join(a.__name__ for a in get_args(hint))
        raise ValueError(f"config key {key}: expected {names}, got {value!r}")
    if not isinstance(value, origin) or (origin is not bool and isinstance(value, bool)):
        raise ValueError(f"config key {key}: expected {origin.__name__}, got {value!r}")
    return value


# keys that moved: (section, key) -> (the default they had, where they are now). A file
# written before that holds the default is read without it (it says nothing); any other
# value is refused with the new spelling.
MOVED: dict[tuple[str, str], tuple[Any, str]] = {
    ("compare", "ray_address"): ("", "compare.executor_options.address"),
    ("compare", "ray_resources"): ({}, "compare.executor_options.resources"),
    ("compare", "slurm"): ({}, "compare.executor_options (submitit's parameters there)"),
}


def _moved(section: str, key: str, value: Any) -> bool:
    """Whether an old key is skipped (its default); raises for any other value."""
    if (section, key) not in MOVED:
        return False
    default, now = MOVED[section, key]
    if value == default:
        return True
    raise ValueError(f"config key {section}.{key} is now {now}: write {value!r} there")


def apply(cfg: T, values: dict[str, Any], prefix: str = "") -> T:
    """Merge a nested dict (as parsed from TOML) into ``cfg`` in place, checking keys/types."""
    for section, body in values.items():
        if not hasattr(cfg, section) or section.startswith("_"):
            known = [f.name for f in dataclasses.fields(cfg)]
            raise ValueError(
                f"unknown config section {prefix}{section!r}{_did_you_mean(section, known)}; "
                f"known: {known}"
            )
        if not isinstance(body, dict):
            raise ValueError(f"config section {prefix}{section} must be a table")
        target = getattr(cfg, section)
        hints = get_type_hints(type(target))
        for key, value in body.items():
            if key not in hints and _moved(section, key, value):
                continue
            if key not in hints:
                raise ValueError(
                    f"unknown config key {section}.{key}{_key_hint(cfg, section, key)}; "
                    f"known in [{section}]: {sorted(hints)}"
                )
            value = _check_type(f"{section}.{key}", value, hints[key])
            setattr(target, key, value)
    return cfg


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _key_hint(cfg: Any, section: str, key: str) -> str:
    """' (did you mean optim.lr?)': the key in another section, or a close spelling."""
    everywhere = [
        f"{name}.{k}"
        for name in (f.name for f in dataclasses.fields(cfg))
        for k in get_type_hints(type(getattr(cfg, name)))
    ]
    same = [full for full in everywhere if full.split(".", 1)[1] == key]
    if same:
        return f" (did you mean {' or '.join(same)}?)"
    return _did_you_mean(f"{section}.{key}", everywhere)
