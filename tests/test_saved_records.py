"""The typed records beside a run and a comparison: WiSE-FT's (``mr2.records.wise``) and a
selection (``mr2.records.selection``): written and read back unchanged, files of the previous layout
still read, and a malformed file is an error naming the field."""

import json

import pytest

from mr2.records.result import SplitScores
from mr2.records.wise import WiseResult, WiseRow, read_wise


def scores(acc):
    return SplitScores(
        overall=sum(acc) / len(acc),
        per_class=acc,
        support=[2] * len(acc),
        confusion=[[2 if i == j else 0 for j in range(len(acc))] for i in range(len(acc))],
        summary={"mean_class": sum(acc) / len(acc)},
        halves=[acc, acc],
    )


def test_a_record_reads_back_as_written(tmp_path):
    record = WiseResult(
        run="R",
        rows=[WiseRow(0.0, scores([0.5, 1.0]), None), WiseRow(1.0, scores([1.0, 1.0]), None)],
        selected_alpha=None,
        select_metric="val mean_class",
        class_names=["a", "b"],
        ranking={"test": "cross-fitted test halves"},
    )
    (tmp_path / "wise.json").write_text(json.dumps(record.to_dict()))
    back = read_wise(tmp_path)
    assert back == record and back.row(1.0).test.per_class == [1.0, 1.0]
    with pytest.raises(KeyError, match=r"no row for alpha 0.5 \(alphas: \[0.0, 1.0\]\)"):
        back.row(0.5)


def test_a_file_of_the_previous_layout_reads(tmp_path):
    """Before the rows were SplitScores: no support or confusion, the ranking's label
    inside each split's scores."""
    old_split = {
        "overall": 0.75,
        "per_class": [0.5, 1.0],
        "halves": None,
        "summary": {"mean_class": 0.75, "hard": 0.5},
        "ranking": "validation of the fine-tuned model",
    }
    old = {
        "run": "R",
        "rows": [{"alpha": 0.5, "val": old_split, "test": old_split}],
        "selected_alpha": 0.5,
        "select_metric": "val mean_class",
        "class_names": ["a", "b"],
    }
    (tmp_path / "wise.json").write_text(json.dumps(old))
    back = read_wise(tmp_path / "wise.json")
    assert back.row(0.5).test.per_class == [0.5, 1.0] and back.row(0.5).test.support == []
    assert back.ranking == {"val": "validation of the fine-tuned model"} | {
        "test": "validation of the fine-tuned model"
    }
    assert back.selected_alpha == 0.5


def test_a_malformed_file_names_the_field(tmp_path):
    bad = {"run": "R", "rows": [{"alpha": "half"}], "selected_alpha": None,
           "select_metric": "m", "class_names": []}  # fmt: skip
    (tmp_path / "wise.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"rows"):
        read_wise(tmp_path)


def test_a_malformed_selection_names_the_field(tmp_path):
    from mr2.records.selection import read_selection

    bad = {"method": "mr2", "metric": "validation hard", "tune_seeds": [0], "selected": {},
           "options": {}, "grid": [{"point": {}, "label": "x", "val_scores": [0.5],
                                    "val_score": "high"}]}  # fmt: skip
    (tmp_path / "selection.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"grid"):
        read_selection(tmp_path)
