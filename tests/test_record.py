"""Runs of one's own loop: record_run writes the engine's result schema; mr2 report builds
the full report from them, also mixed with engine runs; prediction files work too."""

import json
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import recall_score

from helpers import TINY, tiny_config
from mr2 import cli, data, report
from mr2.engine.compare import run_compare
from mr2.report import record_run


def plain_loop(seed: int, epochs: int = 3):
    """A hand-written PyTorch loop on the tiny synthetic data: (test y, predictions, feats)."""
    ds = data.load("synthetic", val_fraction=0.1, **TINY["data"]["options"])
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())
    head = torch.nn.Linear(16, ds.num_classes)
    opt = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=0.1)
    for _ in range(epochs):
        for idx in torch.randperm(len(ds.train)).split(32):
            loss = torch.nn.functional.cross_entropy(head(net(ds.train.x[idx])), ds.train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        feats = net(ds.test.x)
        val_pred = head(net(ds.val.x)).argmax(1)
        return ds, head(feats).argmax(1), feats, val_pred


def test_record_run_per_class_equals_sklearn_recall(tmp_path):
    ds, preds, feats, val_pred = plain_loop(0)
    result = record_run(
        tmp_path / "r",
        method="plain",
        seed=0,
        y_true=ds.test.y,
        y_pred=preds,
        val=(ds.val.y, val_pred),
        features=feats,
        config={"dataset": "synthetic", "lr": 0.1},
    )
    expect = recall_score(ds.test.y, preds, average=None, labels=range(ds.num_classes))
    np.testing.assert_allclose(result.test.per_class, expect)
    assert result.test.overall == pytest.approx(float((preds == ds.test.y).float().mean()))
    assert json.loads((tmp_path / "r" / "result.json").read_text()) == json.loads(
        json.dumps(result.to_dict())
    )
    assert len(result.diagnostics["test_spread"]) == ds.num_classes
    assert result.val.overall == pytest.approx(float((val_pred == ds.val.y).float().mean()))


def test_logits_and_absent_classes(tmp_path):
    logits = torch.tensor([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 1.0, 0]])
    result = record_run(tmp_path, method="m", seed=1, y_true=[0, 1, 1], logits=logits)
    assert result.dataset.num_classes == 4
    per_class = result.test.per_class
    assert per_class[:2] == [1.0, 0.5] and np.isnan(per_class[2]) and np.isnan(per_class[3])
    with pytest.raises(ValueError, match="exactly one of y_pred"):
        record_run(tmp_path, method="m", seed=1, y_true=[0], y_pred=[0], logits=logits[:1])
    with pytest.raises(ValueError, match="integer class indices"):
        record_run(tmp_path, method="m", seed=1, y_true=[0.5], y_pred=[0])


def test_report_from_a_plain_loop_and_mixed_with_engine_runs(tmp_path, capsys):
    for seed in (0, 1):
        for method, epochs in (("plain_short", 1), ("plain_long", 4)):
            ds, preds, feats, _ = plain_loop(seed, epochs)
            record_run(
                tmp_path / "own" / method / f"seed{seed}",
                method=method,
                seed=seed,
                y_true=ds.test.y,
                y_pred=preds,
                features=feats,
                config={"dataset": "synthetic", "epochs": epochs},
            )
    built = report.build([tmp_path / "own"], tmp_path / "own", reference="plain_short")
    assert set(built.summary.methods) == {"plain_short", "plain_long"}
    assert (tmp_path / "own" / "gain_over_reference.png").is_file()
    assert "p 0.5, min 0.5" in built.table  # 2 seeds: the p floor is printed beside p
    # no validation given: ranked on cross-fitted test halves, seed s on the other seed
    assert (
        built.summary.ranking == "ranked on cross-fitted test halves of the reference's other seeds"
    )
    assert built.summary.ranking_unbiased
    cfg = tiny_config()
    cfg.compare.methods, cfg.compare.seeds = ["ce"], [0, 1]
    run_compare(cfg, tmp_path / "engine", show_progress=False, log=lambda *_: None)
    argv = ["report", str(tmp_path / "engine"), str(tmp_path / "own"), "--out", str(tmp_path / "m")]
    assert cli.main(argv) == 0
    mixed = json.loads((tmp_path / "m" / "results.json").read_text())
    assert set(mixed["methods"]) == {"ce", "plain_short", "plain_long"}


def test_missing_field_is_named(tmp_path, capsys):
    record_run(tmp_path / "r", method="m", seed=0, y_true=[0, 1], y_pred=[0, 1])
    path = tmp_path / "r" / "result.json"
    broken = json.loads(path.read_text())
    del broken["test"]["support"]
    path.write_text(json.dumps(broken))
    assert cli.main(["report", str(tmp_path / "r")]) == 2
    assert "missing field 'test.support'" in capsys.readouterr().err


def test_prediction_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    for seed in (0, 1):
        pred = np.where(rng.random(60) < 0.7, y, rng.integers(0, 3, 60))
        np.savez(tmp_path / f"a{seed}.npz", y_true=y, y_pred=pred, method="a", seed=seed)
    lines = ["method,seed,y_true,y_pred"]
    lines += [
        f"b,{s},{t},{t if (i + s) % 3 else (t + 1) % 3}" for s in (0, 1) for i, t in enumerate(y)
    ]
    (tmp_path / "b.csv").write_text("\n".join(lines) + "\n")
    files = [str(tmp_path / "a0.npz"), str(tmp_path / "a1.npz"), str(tmp_path / "b.csv")]
    argv = ["report", "--predictions", *files, "--out", str(tmp_path / "rep"), "--reference", "a"]
    assert cli.main(argv) == 0
    summary = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert set(summary["methods"]) == {"a", "b"} and summary["methods"]["b"]["seeds"] == [0, 1]
    expect = recall_score(y, np.load(tmp_path / "a0.npz")["y_pred"], average=None)
    run = next(r for r in summary["runs"] if r["method"] == "a" and r["seed"] == 0)
    np.testing.assert_allclose(run["per_class"], expect)


def test_an_engine_run_is_never_overwritten(tmp_path):
    from mr2.engine.train import train

    train(tiny_config(), tmp_path / "R", show_progress=False)
    before = (tmp_path / "R" / "result.json").read_bytes()
    with pytest.raises(ValueError, match="holds a run of mr2's engine"):
        record_run(tmp_path / "R", method="m", seed=0, y_true=[0, 1], y_pred=[0, 1])
    assert (tmp_path / "R" / "result.json").read_bytes() == before


def test_non_finite_logits_are_refused(tmp_path):
    logits = np.array([[1.0, 0.0], [np.nan, 0.0], [np.inf, 1.0]])
    with pytest.raises(ValueError, match="logits of 2 sample"):
        record_run(tmp_path / "r", method="m", seed=0, y_true=[0, 1, 1], logits=logits)
    assert not (tmp_path / "r").exists()


def test_a_run_in_two_prediction_files_is_refused_with_both_names(tmp_path):
    from mr2.report import record_predictions

    y = np.array([0, 1, 2, 1])
    for name in ("a", "b"):
        np.savez(tmp_path / f"{name}.npz", y_true=y, y_pred=y, method="m", seed=3)
    with pytest.raises(ValueError, match=r"seed 3 is in both .*a\.npz and .*b\.npz"):
        record_predictions([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written before the check


def test_an_implausible_label_is_refused_before_anything_is_allocated(tmp_path, monkeypatch):
    from mr2.report import own_loop, record_predictions

    path = tmp_path / "p.csv"
    path.write_text("y_true,y_pred\n0,0\n1,1\n1000000000,1\n")
    allocated = []
    monkeypatch.setattr(own_loop, "confusion_counts", lambda *a: allocated.append(a))
    with pytest.raises(ValueError, match="largest label is 1000000000 but only 3 of the"):
        record_predictions([path], tmp_path / "out")
    with pytest.raises(ValueError, match="at least half of its classes present"):
        record_run(tmp_path / "r", method="m", seed=0, y_true=[0, 1, 10**9], y_pred=[0, 1, 1])
    assert allocated == []
    with pytest.raises(ValueError, match="plain name"):
        record_run(tmp_path / "r", method="..", seed=0, y_true=[0, 1], y_pred=[0, 1])


def test_an_inferred_class_count_needs_half_its_classes_and_a_bound(tmp_path):
    from mr2.report import record_predictions
    from mr2.report.own_loop import MAX_INFERRED_CLASSES, inferred_classes

    # the finding: labels up to 6,000 with 667 distinct took 4 GB; now refused at once
    labels = np.arange(0, 6001, 9)
    (tmp_path / "p.csv").write_text("y_true,y_pred\n" + "".join(f"{v},{v}\n" for v in labels))
    with pytest.raises(ValueError, match=r"largest label is 5994 but only 667 of the 5995 classes"):
        record_predictions([tmp_path / "p.csv"], tmp_path / "out")
    assert inferred_classes([0, 2, 4], [1]) == 5  # 4 of 5 classes occur
    with pytest.raises(ValueError, match="at least half"):
        inferred_classes([0, 9])  # 2 of 10
    many = np.arange(MAX_INFERRED_CLASSES + 1)
    with pytest.raises(ValueError, match="at most 10,000"):
        inferred_classes(many)
    # a class count given by the user is theirs (the names set it)
    result = record_run(tmp_path / "k", method="m", seed=0, y_true=[0, 9], y_pred=[0, 9],
                        class_names=[str(i) for i in range(10)])  # fmt: skip
    assert result.dataset.num_classes == 10


def test_a_large_class_count_reports_in_memory_of_a_few_confusion_matrices(tmp_path):
    """K = 250, two methods x two seeds: the report's traced peak stays within 32 K x K
    float64 matrices (measured: 24), i.e. memory grows with K^2, not with an inflated K."""
    import tracemalloc

    from mr2 import report

    k, rng = 250, np.random.default_rng(0)
    for method in ("a", "b"):
        for seed in (0, 1):
            y = np.repeat(np.arange(k), 5)
            p = np.where(rng.random(len(y)) < 0.6, y, rng.integers(0, k, len(y)))
            record_run(tmp_path / "runs" / method / f"seed{seed}", method=method, seed=seed,
                       y_true=y, y_pred=p, class_names=[str(i) for i in range(k)])  # fmt: skip
    tracemalloc.start()
    report.build([tmp_path / "runs"], tmp_path / "rep", reference="a")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * k * k * 8, f"peak {peak / 1e6:.0f} MB"


def test_record_run_refuses_another_runs_folder_bad_names_and_seeds(tmp_path):
    y = [0, 1, 1]
    record_run(tmp_path / "r", method="ce", seed=0, y_true=y, y_pred=y)
    with pytest.raises(ValueError, match=r"holds the run of method 'ce' seed 0: .*overwrite=True"):
        record_run(tmp_path / "r", method="mr2", seed=0, y_true=y, y_pred=y)
    with pytest.raises(ValueError, match="seed 0"):
        record_run(tmp_path / "r", method="ce", seed=1, y_true=y, y_pred=y)
    assert json.loads((tmp_path / "r" / "result.json").read_text())["method"] == "ce"
    record_run(tmp_path / "r", method="ce", seed=0, y_true=y, y_pred=[0, 1, 0])  # the same run
    record_run(tmp_path / "r", method="mr2", seed=0, y_true=y, y_pred=y, overwrite=True)
    assert json.loads((tmp_path / "r" / "result.json").read_text())["method"] == "mr2"
    for method, message in [
        ("a\nb", "control character '\\n'"),
        ("a\x00b", "control character '\\x00'"),
        ("x" * 129, "129 characters, more than 128"),
        ("a\tb", "control character"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            record_run(tmp_path / "s", method=method, seed=0, y_true=y, y_pred=y)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        record_run(tmp_path / "s", method="m", seed=-1, y_true=y, y_pred=y)
    with pytest.raises(ValueError, match="NUL byte"):
        record_run(str(tmp_path / "s\x00t"), method="m", seed=0, y_true=y, y_pred=y)
    assert not (tmp_path / "s").exists()


def test_prediction_files_with_a_bad_method_name_are_refused_naming_the_file(tmp_path):
    from mr2.report import record_predictions

    (tmp_path / "p.csv").write_text("y_true,y_pred,method\n0,0,a\x01b\n1,1,a\x01b\n")
    with pytest.raises(ValueError, match=re.escape("p.csv: method 'a\\x01b' holds the control")):
        record_predictions([tmp_path / "p.csv"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_record_run_refuses_mismatched_names_and_bad_features(tmp_path):
    y = np.array([0, 1, 2, 1])
    logits = np.eye(3)[y]
    with pytest.raises(ValueError, match="class_names has 4 names but the logits have 3"):
        record_run(tmp_path / "a", method="m", seed=0, y_true=y, logits=logits,
                   class_names=["a", "b", "c", "d"])  # fmt: skip
    feats = np.ones((4, 2))
    feats[1, 0] = np.nan
    with pytest.raises(ValueError, match="features must be a finite"):
        record_run(tmp_path / "b", method="m", seed=0, y_true=y, logits=logits, features=feats)
    with pytest.raises(ValueError, match="features have 3 rows but y_true has 4 labels"):
        record_run(tmp_path / "b", method="m", seed=0, y_true=y, logits=logits,
                   features=np.ones((3, 2)))  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_prediction_files_refuse_array_methods_and_truncated_npz(tmp_path):
    from mr2.report.predictions import record_predictions

    y = np.array([0, 1, 2, 1])
    np.savez(tmp_path / "a.npz", y_true=y, y_pred=y, method=np.array(["ce", "mr2"]))
    with pytest.raises(ValueError, match="method must be one value"):
        record_predictions([tmp_path / "a.npz"], tmp_path / "out")
    np.savez(tmp_path / "b.npz", y_true=y, y_pred=y)
    blob = (tmp_path / "b.npz").read_bytes()
    (tmp_path / "b.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"b\.npz cannot be read as an \.npz"):
        record_predictions([tmp_path / "b.npz"], tmp_path / "out")


def test_recorded_runs_mix_with_engine_runs_when_they_name_the_same_data(tmp_path):
    """The README's quick start: runs of one's own loop reported beside mr2's own runs."""
    cfg = tiny_config()
    cfg.compare.methods, cfg.compare.seeds = ["ce"], [0, 1]
    run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    ds = data.load("synthetic", **TINY["data"]["options"])
    y = ds.test.y.numpy()
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        logits = rng.normal(size=(len(y), ds.num_classes)) + 3 * np.eye(ds.num_classes)[y]
        kwargs = {"method": "mine", "seed": seed, "y_true": y, "logits": logits}
        record_run(tmp_path / "bare" / f"s{seed}", **kwargs)
        record_run(tmp_path / "named" / f"s{seed}", **kwargs, class_names=ds.class_names,
                   config={"dataset": "synthetic"})  # fmt: skip
    with pytest.raises(ValueError, match=r"record_run\(\.\.\., config=\{'dataset': NAME\}"):
        report.build([tmp_path / "C", tmp_path / "bare"], tmp_path / "R1")
    built = report.build([tmp_path / "C", tmp_path / "named"], tmp_path / "R2")
    assert set(built.summary.methods) == {"ce", "mine"}
