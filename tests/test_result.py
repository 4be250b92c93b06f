"""The typed result records: the committed JSON Schema is the one the dataclasses give, files
of every writer (engine, record_run, this and the previous mr2) validate against it with the
independent ``jsonschema`` package and read back unchanged, and bad files are refused with
the field named."""

import json
import math
from pathlib import Path

import jsonschema
import pytest

from helpers import tiny_config
from mr2.engine.train import train
from mr2.records.result import SCHEMA_VERSION, EpochRecord, json_schema, read_result
from mr2.report import record_run

ROOT = Path(__file__).parents[1]
OLD = ROOT / "tests" / "data"  # written by mr2 0.1.0 before the typed records (same schema 1)


def _valid(data: dict) -> None:
    jsonschema.validate(json.loads(json.dumps(data)), json_schema())


def test_committed_schema_is_generated_from_the_dataclasses():
    committed = json.loads((ROOT / "docs" / "result.schema.json").read_text())
    assert committed == json_schema(), (
        "regenerate: python -m mr2.records.result > docs/result.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(committed)
    assert committed["properties"]["schema"] == {"const": SCHEMA_VERSION}
    assert set(committed["required"]) == {"method", "seed", "dataset", "test", "schema"}


@pytest.mark.parametrize("name", ["result_schema1_engine.json", "result_schema1_record_run.json"])
def test_files_of_the_previous_version_read_and_round_trip(name):
    data = json.loads((OLD / name).read_text())
    _valid(data)
    result = read_result(OLD / name)
    again = result.to_dict()
    assert json.dumps(again, sort_keys=True) == json.dumps(data, sort_keys=True)
    assert result.test.overall == data["test"]["overall"]
    assert [h.epoch for h in result.history] == [h["epoch"] for h in data["history"]]


@pytest.mark.integration  # trains (a tiny run)
def test_engine_and_record_run_write_valid_files_that_read_back_equal(tmp_path):
    result = train(tiny_config(loss__name="mr2"), tmp_path / "r", show_progress=False)
    stored = json.loads((tmp_path / "r" / "result.json").read_text())
    _valid(stored)
    assert read_result(tmp_path / "r") == result
    assert isinstance(result.history[0], EpochRecord) and result.history[0].margins
    # the history rows are the log's rows
    log = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert log == [h.to_dict() for h in result.history]
    y_true, y_pred = [0, 1, 1, 2, 2, 2], [0, 1, 0, 2, 2, 1]
    mine = record_run(tmp_path / "m", method="m", seed=0, y_true=y_true, y_pred=y_pred)
    _valid(json.loads((tmp_path / "m" / "result.json").read_text()))
    again = read_result(tmp_path / "m" / "result.json").to_dict()
    assert json.dumps(again, sort_keys=True) == json.dumps(mine.to_dict(), sort_keys=True)
    assert mine.test.halves[0][0] != mine.test.halves[0][0]  # class 0's one sample: in half B
    assert mine.test.summary["worst_class"] == 0.5 and mine.test.summary["hard"] == 0.5
    assert mine.dataset.split == "test"


def test_nan_per_class_survives_the_round_trip(tmp_path):
    r = record_run(
        tmp_path, method="m", seed=1, y_true=[0, 1], y_pred=[0, 1], class_names=list("abc")
    )
    back = read_result(tmp_path)
    assert math.isnan(back.test.per_class[2]) and back.test.per_class[:2] == [1.0, 1.0]
    assert back.test.support == r.test.support == [1, 1, 0]


def _broken(tmp_path, change) -> Path:
    data = json.loads((OLD / "result_schema1_engine.json").read_text())
    change(data)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema=SCHEMA_VERSION + 1), "is newer than this mr2 reads"),
        (lambda d: d.pop("schema"), "no valid 'schema' version"),
        (lambda d: d["test"].pop("support"), "missing field 'test.support'"),
        (lambda d: d["test"].update(overall="high"), "field 'test.overall' must be float"),
        (lambda d: d["history"][0].update(epoch=True), r"field 'history\[0\].epoch' must be int"),
        (lambda d: d["dataset"].update(num_classes=3), "test.per_class has 10 entries, K = 3"),
        (lambda d: d.update(val=[1]), "field 'val' must be an object"),
    ],
)
def test_bad_files_are_refused_naming_the_field(tmp_path, change, message):
    path = _broken(tmp_path, change)
    with pytest.raises(ValueError, match=message) as err:
        read_result(path)
    assert str(path) in str(err.value)


def test_history_rows_keep_loss_specific_fields_only_when_present():
    row = EpochRecord(epoch=0, time_s=1.0, train_loss=0.5)
    assert "margins" not in row.to_dict() and row.to_dict()["val_acc"] is None
    assert EpochRecord.from_dict(row.to_dict()) == row
    with pytest.raises(ValueError, match="missing field 'time_s'"):
        EpochRecord.from_dict({"epoch": 0})
