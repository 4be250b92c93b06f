"""Typed records to and from JSON: ``build`` reads a dataclass from parsed JSON with every
field type-checked (a ``ValueError`` naming the file and the field), ``plain`` writes one as
plain dicts and lists. Both handle vectors of plain values in one pass (a confusion matrix
of K = 2,000 is 4 million values: checked and copied per row, not per value)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, Union

T = TypeVar("T")


def plain(obj: Any) -> Any:
    """``dataclasses.asdict`` for records that hold large vectors: dataclasses, dicts and
    lists of containers are copied, a list of plain values once (not value by value)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if not set(map(type, obj)) - _PLAIN:  # plain values: one copy of the list
            return type(obj)(obj)
        return type(obj)(plain(v) for v in obj)
    return obj


def as_dict(record: Any) -> dict[str, Any]:
    """``plain`` of a dataclass instance: its fields as a dict."""
    out = plain(record)
    if not isinstance(out, dict):
        raise TypeError(f"as_dict takes a dataclass instance, got {type(record).__name__}")
    return out


def record_from(cls: type[T], data: Any, where: object) -> T:
    """A record of type ``cls`` (a dataclass) from parsed JSON, every field type-checked
    as ``RunResult.from_dict`` checks its own; keys it does not know are ignored."""
    return build(cls, data, str(where))


def build(cls: type[T], data: Any, where: str, path: str = "") -> T:
    """A record of dataclass ``cls`` from parsed JSON ``data`` (``where``: the file, for
    messages; ``path``: the field it sits at)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: field {path or 'top level'!r} must be an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{path}.{f.name}" if path else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(
                    f"{where}: missing field {key!r} of the result schema (see mr2.records.result; "
                    "write runs of your own loop with mr2.report.record_run)"
                )
            continue
        values[f.name] = _convert(hints[f.name], data[f.name], where, key)
    return cls(**values)


def _convert(hint: Any, value: Any, where: str, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where, key)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where, key)  # type: ignore[arg-type]
    if hint is Any:
        return value
    if origin is list:
        _expect(isinstance(value, list), hint, value, where, key)
        if args[0] in _SCALAR_CHECKS:  # a vector (a confusion row): one pass, no recursion
            return _scalars(args[0], value, where, key)
        return [_convert(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _expect(isinstance(value, dict), hint, value, where, key)
        return {k: _convert(args[1], v, where, f"{key}.{k}") for k, v in value.items()}
    _expect(_SCALAR_CHECKS[hint](value), hint, value, where, key)
    return float(value) if hint is float else value


_PLAIN: set[type] = {int, float, str, bool, type(None)}
_TYPES: dict[Any, set[type]] = {int: {int}, float: {float, int}, str: {str}, bool: {bool}}
_SCALAR_CHECKS: dict[Any, Any] = {
    int: lambda v: type(v) is int or (isinstance(v, int) and not isinstance(v, bool)),
    float: lambda v: (
        type(v) in (float, int) or (isinstance(v, (int, float)) and not isinstance(v, bool))
    ),
    str: lambda v: isinstance(v, str),
    bool: lambda v: isinstance(v, bool),
}


def _scalars(hint: Any, values: list, where: str, key: str) -> list:
    """A list of scalars of type ``hint``, checked in one pass (the first bad one named)."""
    ok = _SCALAR_CHECKS[hint]
    if set(map(type, values)) - _TYPES[hint] and not all(map(ok, values)):
        i = next(i for i, v in enumerate(values) if not ok(v))
        _expect(False, hint, values[i], where, f"{key}[{i}]")
    return [float(v) for v in values] if hint is float else values


def _expect(ok: bool, hint: Any, value: Any, where: str, key: str) -> None:
    if not ok:
        name = getattr(hint, "__name__", None) or str(hint)
        raise ValueError(f"{where}: field {key!r} must be {name}, got {value!r}")
