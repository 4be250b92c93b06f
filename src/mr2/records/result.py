"""A run's result as typed records: what ``result.json`` holds, one dataclass per part.

``RunResult`` is what training returns and what ``result.json`` stores (``to_dict`` /
``from_dict``); ``EpochRecord`` is a row of its history (and of ``log.jsonl``);
``SplitScores`` the one test evaluation; ``ValSummary`` the validation numbers tuning may
look at; ``DatasetInfo`` the data it ran on. ``json_schema()`` is the JSON Schema of the
file, generated from these classes (committed as ``docs/result.schema.json`` and checked
against them by a test). ``SCHEMA_VERSION`` is the ``schema`` field; ``from_dict`` reads
every version up to it and refuses a newer or unversioned file with a message that says
what to do. Floats may be NaN (a class without test samples), written as JSON's ``NaN``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from mr2.records.storage import load_json
from mr2.records.typed_json import as_dict, build

SCHEMA_VERSION = 1
CHANCE_FACTOR = 1.5  # a final training accuracy below 1.5 / K counts as "near chance"


@dataclass
class DatasetInfo:
    name: str
    num_classes: int
    class_names: list[str]
    sizes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    split: str | None = None  # record_run: which split the scores are of ("test" | "val")


@dataclass
class SplitScores:
    """One evaluation: overall accuracy, per-class accuracy (NaN: no samples), support,
    confusion (rows: true class) and the disparity summary (``DisparitySummary`` fields;
    its easy / medium / hard are this run's own classes ranked on these very accuracies,
    i.e. the bottom third: reports rank classes on other data, see mr2.metrics.hard).
    ``halves``: (2, K) per-class accuracy on the two cross-fitting halves of each class's
    samples, and ``labels_sha256`` the digest of the labels in evaluation order (runs with
    equal digests have the same halves)."""

    overall: float
    per_class: list[float]
    support: list[int]
    confusion: list[list[int]]
    summary: dict[str, Any] = field(default_factory=dict)
    halves: list[list[float]] | None = None
    labels_sha256: str | None = None


@dataclass
class ValSummary:
    """Validation numbers of the selected epoch: what tuning may select on."""

    per_class: list[float]
    mean_class: float
    worst_class: float
    hard: float
    overall: float


@dataclass
class WeightsInfo:
    """Where a run's model started: ``kind`` "random", "library" (``name``: the library's
    weights, e.g. "IMAGENET1K_V1") or "file" (``name``: its path, ``sha256``: its content)."""

    kind: str
    name: str = ""
    sha256: str | None = None


@dataclass
class EpochRecord:
    """One epoch of training (a history row). Validation fields are None without a
    validation split; ``margins`` / ``spreads`` are MR²'s, ``q`` group DRO's and
    ``class_weights`` CDB's, present only for those losses; ``series`` any other per-class
    series a loss records (``ClassLoss.internals``: a plug-in's); ``rep_grad_ratio`` is the norm of
    the gradient MR²'s representation term sends to the features over its logit term's, on
    one fixed training batch (only with lambda_rep > 0)."""

    epoch: int
    time_s: float
    train_loss: float | None = None
    train_acc: float | None = None
    lr: float | None = None
    val_acc: float | None = None
    val_mean_class: float | None = None
    val_per_class: list[float] | None = None
    margins: list[float] | None = None
    spreads: list[float] | None = None
    q: list[float] | None = None
    class_weights: list[float] | None = None
    rep_grad_ratio: float | None = None
    series: dict[str, list[float]] | None = None

    LOSS_FIELDS = ("margins", "spreads", "q", "class_weights")  # the per-class ones drawn

    def to_dict(self) -> dict[str, Any]:
        """The row as written to log.jsonl: loss-specific fields only when present."""
        row = as_dict(self)
        for key in ("val_per_class", *self.LOSS_FIELDS, "rep_grad_ratio", "series"):
            if row[key] is None:
                del row[key]
        return row

    @classmethod
    def from_dict(cls, row: Any, where: object = "history row") -> EpochRecord:
        return build(cls, row, str(where))


@dataclass
class RunResult:
    """Everything one run's ``result.json`` holds."""

    method: str
    seed: int
    dataset: DatasetInfo
    test: SplitScores
    config: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    selected_epoch: int | None = None
    val: ValSummary | None = None
    diagnostics: dict[str, list[float]] = field(default_factory=dict)
    history: list[EpochRecord] = field(default_factory=list)
    world_size: int = 1
    train_time_s: float | None = None
    fingerprint: str | None = None  # engine runs: the identity's hash
    weights: WeightsInfo | None = None  # engine runs: where the model started
    mr2_version: str | None = None
    source: str | None = None  # "record_run" for runs of the user's own loop
    schema: int = SCHEMA_VERSION
    # where the result was read from (set by the reader, not stored in the file)
    run_dir: str | None = field(default=None, metadata={"stored": False})

    def to_dict(self) -> dict[str, Any]:
        out = as_dict(self)
        out["history"] = [h.to_dict() for h in self.history]
        for f in dataclasses.fields(self):
            if not f.metadata.get("stored", True) or (
                f.name in ("fingerprint", "mr2_version", "source", "weights")
                and out[f.name] is None
            ):
                del out[f.name]
        if self.dataset.split is None:
            del out["dataset"]["split"]
        for key in ("halves", "labels_sha256"):  # absent from files that predate them
            if out["test"][key] is None:
                del out["test"][key]
        return out

    @classmethod
    def from_dict(cls, data: Any, where: object = "result") -> RunResult:
        """The result in ``data`` (a parsed result.json), every field type-checked; a
        ``ValueError`` naming ``where`` and the field otherwise."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a result must be a JSON object, got {type(data).__name__}")
        version = data.get("schema")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(
                f"{where}: no valid 'schema' version ({version!r}): not a result.json of mr2; "
                "write runs of your own loop with mr2.report.record_run"
            )
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"{where}: result schema {version} is newer than this mr2 reads "
                f"({SCHEMA_VERSION}); upgrade mr2"
            )
        result = build(cls, data, str(where))
        k = result.dataset.num_classes
        for key in ("per_class", "support"):
            if len(getattr(result.test, key)) != k:
                n = len(getattr(result.test, key))
                raise ValueError(f"{where}: test.{key} has {n} entries, K = {k}")
        return result


def read_result(path: str | Path) -> RunResult:
    """The result stored at ``path`` (a result.json, or the run directory holding one)."""
    p = Path(path)
    p = p / "result.json" if p.is_dir() else p
    return RunResult.from_dict(load_json(p), p)


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _schema_of(hint: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema_of(a) for a in args]}
    if hint is type(None):
        return {"type": "null"}
    if hint is Any:
        return {}
    if dataclasses.is_dataclass(hint):
        return {"$ref": f"#/$defs/{hint.__name__}"}  # type: ignore[union-attr]
    if origin is list:
        return {"type": "array", "items": _schema_of(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(args[1])}
    return {"type": _JSON_TYPES[hint]}


def _object_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    stored = [f for f in dataclasses.fields(cls) if f.metadata.get("stored", True)]
    required = [
        f.name
        for f in stored
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    props = {f.name: _schema_of(hints[f.name]) for f in stored}
    if cls.__doc__:
        return {
            "type": "object",
            "description": " ".join(cls.__doc__.split()),
            "properties": props,
            "required": required,
        }
    return {"type": "object", "properties": props, "required": required}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of result.json, generated from the dataclasses."""
    parts = (DatasetInfo, SplitScores, ValSummary, EpochRecord, WeightsInfo)
    top = _object_schema(RunResult)
    top["properties"]["schema"] = {"const": SCHEMA_VERSION}
    top["required"].append("schema")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"mr2 result.json, schema version {SCHEMA_VERSION} (floats may be NaN)",
        **top,
        "$defs": {c.__name__: _object_schema(c) for c in parts},
    }


if __name__ == "__main__":  # python -m mr2.records.result > docs/result.schema.json
    import json

    print(json.dumps(json_schema(), indent=2))
