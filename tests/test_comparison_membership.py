"""A comparison's report holds exactly its own runs (OUT/comparison.json): runs of methods a
later ``--overwrite`` dropped are listed as not part of it, never pooled; a planned run
without a result is listed as missing."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import tiny_config
from mr2 import report
from mr2.comparison import read_manifest
from mr2.engine.compare import run_compare


def _compare(out, methods, epochs, overwrite=False):
    cfg = tiny_config()
    cfg.compare.methods, cfg.compare.seeds, cfg.train.epochs = methods, [0, 1], epochs
    return run_compare(cfg, out, overwrite=overwrite, log=lambda *_: None, show_progress=False)


def test_report_after_overwrite_with_other_methods_has_only_the_new_runs(tmp_path):
    out = tmp_path / "C"
    _compare(out, ["ce", "focal"], epochs=1)
    _compare(out, ["ce", "mr2"], epochs=2, overwrite=True)
    assert (out / "focal" / "seed0" / "result.json").is_file()  # left there, trained 1 epoch
    manifest = read_manifest(out)
    assert manifest is not None and manifest.methods == ["ce", "mr2"]
    built = report.build([out], tmp_path / "R")
    assert set(built.summary.methods) == {"ce", "mr2"}
    assert {r.method for r in built.summary.runs} == {"ce", "mr2"}
    assert all(r.config["train"]["epochs"] == 2 for r in built.summary.runs)
    assert sorted(built.summary.not_compared) == [
        str(out / "focal" / "seed0"),
        str(out / "focal" / "seed1"),
    ]
    text = built.path.read_text()
    assert "## Not part of this comparison" in text and "focal/seed1" in text
    assert "| focal |" not in text
    saved = json.loads((tmp_path / "R" / "results.json").read_text())
    assert len(saved["not_compared"]) == 2


def test_a_planned_run_without_result_is_listed_as_missing(tmp_path):
    out = tmp_path / "C"
    _compare(out, ["ce", "mr2"], epochs=1)
    shutil.rmtree(out / "mr2" / "seed1")  # as a worker killed before it set up the run
    built = report.build([out], tmp_path / "R")
    missing = built.summary.missing
    assert [(m.method, m.seed) for m in missing] == [("mr2", 1)]
    assert "not finished" in missing[0].error
    assert "## Missing runs" in built.path.read_text()
    assert "| mr2 | 1 (1 missing) |" in built.table  # failed or unfinished: missing


def test_a_folder_without_manifest_reports_every_run(tmp_path):
    out = tmp_path / "C"
    _compare(out, ["ce", "mr2"], epochs=1)
    (out / "comparison.json").unlink()  # a folder gathered by hand, or an older comparison
    built = report.build([out], tmp_path / "R")
    assert set(built.summary.methods) == {"ce", "mr2"} and built.summary.not_compared == []


def test_a_corrupt_manifest_is_an_error_naming_it(tmp_path):
    (tmp_path / "comparison.json").write_text('{"methods": []}')
    with pytest.raises(ValueError, match=r"comparison\.json is not a comparison manifest"):
        read_manifest(tmp_path)


def test_a_finished_run_with_a_leftover_failure_record_counts_once(tmp_path):
    out = tmp_path / "C"
    _compare(out, ["ce", "mr2"], epochs=1)
    (out / "mr2" / "seed0" / "failed.json").write_text('{"run": "mr2 seed 0", "error": "old"}')
    built = report.build([out], tmp_path / "R")
    assert built.summary.missing == []  # finished since: not also listed as failed
    assert "missing)" not in built.table and len(built.summary.methods["mr2"].seeds) == 2
