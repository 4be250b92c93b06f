"""The training engine end to end: results, resume after a real kill, DDP with torchrun,
model selection on validation, CDB refresh, compare + report, CLI errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import tiny_config, torchrun_train
from mr2 import cli, losses, report
from mr2.engine import config
from mr2.engine.schedule import lr_factor
from mr2.engine.train import train


def small(**sections):
    cfg = tiny_config(**sections)
    cfg.optim.lr, cfg.optim.warmup_epochs = 0.05, 1.0
    if "train__epochs" not in sections:
        cfg.train.epochs = 3
    return cfg


def write_config(cfg, path: Path) -> Path:
    path.write_text(config.to_toml(cfg))
    return path


def test_lr_schedule_hand_values():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(50, 100, 0, "constant") == 1.0


def test_train_writes_results_and_mr2_internals(tmp_path):
    result = train(small(loss__name="mr2"), tmp_path / "run", show_progress=False)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.toml", "log.jsonl", "checkpoint.pt", "final.pt", "result.json"} <= files
    assert sum(result.test.support) == 200  # every test sample counted once
    assert result.dataset.sizes == {"train": 360, "val": 40, "test": 200}
    history = result.history
    assert [h.epoch for h in history] == [0, 1, 2]
    assert len(history[-1].margins) == 5 and len(history[-1].spreads) == 5
    assert sum(history[-1].margins) == pytest.approx(5.0)  # mean margin c_bar = 1
    assert config.load(tmp_path / "run" / "config.toml") == small(loss__name="mr2")
    assert json.loads((tmp_path / "run" / "result.json").read_text())["method"] == "mr2"


def test_best_val_selection_uses_validation(tmp_path):
    result = train(
        small(train__select="best_val", train__epochs=4), tmp_path / "r", show_progress=False
    )
    scores = [h.val_mean_class for h in result.history]
    assert result.selected_epoch == max(range(4), key=lambda e: (scores[e], -e))


def test_cdb_weights_refresh_from_validation(tmp_path):
    result = train(small(loss__name="cdb"), tmp_path / "r", show_progress=False)
    for h in result.history:
        expect = losses.cdb_weights(torch.tensor(h.val_per_class), 1.0)
        torch.testing.assert_close(torch.tensor(h.class_weights), expect.float())


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    cfg = small(loss__name="mr2", train__epochs=4)
    cfg.data.options = {"num_classes": 10, "dim": 32, "n_train": 2000, "n_test": 50}
    cfg.model.options = {"width": 256}
    cfg_file = write_config(cfg, tmp_path / "c.toml")
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mr2", "train", "--config", str(cfg_file), "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = killed / "log.jsonl"
    deadline = time.time() + 600  # a loaded machine can take minutes to start a run
    while not (log.exists() and log.read_text().count("\n") >= 1) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "result.json").exists()
    # killed mid-run (how far it got depends on the machine's load, not on the test)
    assert torch.load(killed / "checkpoint.pt", weights_only=False)["epoch"] < 4
    subprocess.run(cmd, check=True, capture_output=True)  # resumes
    resumed = json.loads((killed / "result.json").read_text())
    # the reference in a process of its own too: this one's thread count may differ
    subprocess.run([*cmd[:-1], str(tmp_path / "fresh")], check=True, capture_output=True)
    fresh = json.loads((tmp_path / "fresh" / "result.json").read_text())
    assert resumed["test"]["per_class"] == fresh["test"]["per_class"]
    assert [h["train_loss"] for h in resumed["history"]] == [
        h["train_loss"] for h in fresh["history"]
    ]
    a = torch.load(killed / "final.pt", weights_only=False)
    b = torch.load(tmp_path / "fresh" / "final.pt", weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["loss"]["sums"], b["loss"]["sums"])  # the class statistics


@pytest.mark.ddp
def test_torchrun_two_processes_match_one(tmp_path):
    cfg = small(loss__name="mr2", train__epochs=2)
    cfg.loss.options = {"gather_features": True}
    cfg_file = write_config(cfg, tmp_path / "c.toml")
    torchrun_train(cfg_file, tmp_path / "ddp")
    ddp = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert ddp["world_size"] == 2 and sum(ddp["test"]["support"]) == 200
    single = train(cfg, tmp_path / "one", show_progress=False)
    a = torch.load(tmp_path / "ddp" / "final.pt", weights_only=False)
    b = torch.load(tmp_path / "one" / "final.pt", weights_only=False)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a["loss"]["sums"], b["loss"]["sums"], rtol=1e-4, atol=1e-5)
    assert ddp["test"]["confusion"] == single.test.confusion


def test_compare_report_and_resume(tmp_path, capsys):
    cfg = small(train__epochs=2)
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0, 1]
    cfg.compare.options = {"mr2": {"lambda_rep": 0.2}}
    cfg_file = write_config(cfg, tmp_path / "c.toml")
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--config", str(cfg_file), "--out", str(out)]) == 0
    for name in (
        "report.md",
        "results.json",
        "per_class.csv",
        "sorted_accuracy.png",
        "gain_over_reference.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "sorted_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["methods"]) == ["ce", "mr2"] and len(summary["runs"]) == 4
    assert summary["methods"]["mr2"]["vs_reference"]["hard_gain_per_seed"]
    run = next(r for r in summary["runs"] if r["method"] == "mr2")
    assert run["config"]["loss"]["options"] == {"lambda_rep": 0.2}
    assert len((out / "per_class.csv").read_text().splitlines()) == 1 + 4 * 5
    capsys.readouterr()
    assert cli.main(["compare", "--config", str(cfg_file), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done earlier, skipped") == 4
    before = (out / "results.json").read_text()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "results.json").read_text() == before


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path), "--set", "train.epoch=2"]) == 2
    assert "train.epoch" in capsys.readouterr().err
    assert cli.main(["compare", "--out", str(tmp_path), "--methods", "ce", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "none")]) == 2


def test_demo_falls_back_to_digits(monkeypatch):
    from mr2 import demo

    def missing(*_a, **_k):
        raise FileNotFoundError("fashion_mnist: not found")

    monkeypatch.setattr(demo, "load", missing)
    said = []
    cfg = demo.demo_config(log=said.append)
    assert cfg.data.name == "digits" and "Falling back" in said[0]


def test_quick_demo_has_its_own_folder(monkeypatch, tmp_path):
    """`mr2 demo --quick` and `mr2 demo` never share runs (the full demo would otherwise
    reuse the quick 2-epoch runs)."""
    from mr2 import demo

    used = []
    monkeypatch.setattr(demo, "run_compare", lambda cfg, out, **kw: used.append(str(out)))
    monkeypatch.setattr(
        demo.report, "build", lambda *a, **k: report.Report({}, "", tmp_path / "r.md", [], [])
    )
    monkeypatch.setattr(demo, "load", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--quick"]) == 0 and cli.main(["demo"]) == 0
    assert used == ["runs/demo-quick", "runs/demo"]


def test_training_with_the_progress_bar_raises_no_warning(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(small(loss__name="mr2", train__epochs=1), tmp_path / "r", show_progress=True)


def test_evaluate_a_finished_run(tmp_path, capsys):
    cfg_file = write_config(small(loss__name="mr2"), tmp_path / "c.toml")
    run = tmp_path / "R"
    assert cli.main(["train", "--config", str(cfg_file), "--out", str(run)]) == 0
    result = json.loads((run / "result.json").read_text())
    assert cli.main(["evaluate", str(run)]) == 0
    test = json.loads((run / "eval_test.json").read_text())
    assert test["per_class"] == result["test"]["per_class"]
    # hard cross-fitted on the run's own test halves (the ones result.json recorded)
    from mr2.metrics.hard import crossfit_groups

    expect = crossfit_groups(result["test"]["per_class"], result["test"]["halves"])
    assert test["summary"]["hard"] == pytest.approx(expect["hard"])
    assert cli.main(["evaluate", str(run), "--split", "val"]) == 0
    val = json.loads((run / "eval_val.json").read_text())
    assert val["per_class"] == result["history"][-1]["val_per_class"]  # select = "last"
    assert "test accuracy" in capsys.readouterr().out
    assert cli.main(["evaluate", str(run)]) == 2  # the earlier output stays
    assert "eval_test.json exists (an earlier evaluation)" in capsys.readouterr().err
    assert cli.main(["evaluate", str(run), "--overwrite", "--device", "auto"]) == 0
    assert json.loads((run / "eval_test.json").read_text())["per_class"] == test["per_class"]
    if not torch.cuda.is_available():
        assert cli.main(["evaluate", str(run), "--out", "x.json", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert cli.main(["evaluate", str(run), "--set", "train.epochs=9"]) == 2
    assert "only data.* settings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("mr2 ")


def test_zero_shot_command_evaluates_the_untrained_model(tmp_path):
    cfg_file = write_config(small(), tmp_path / "c.toml")
    assert cli.main(["zero-shot", "--config", str(cfg_file), "--out", str(tmp_path / "Z")]) == 0
    result = json.loads((tmp_path / "Z" / "result.json").read_text())
    assert result["method"] == "zero_shot" and result["history"] == []
    assert not (tmp_path / "Z" / "final.pt").exists()  # nothing trained, nothing saved


def _digits_cnn(**train):
    cfg = tiny_config(data__name="digits", data__options={}, model__name="cnn")
    cfg.model.options = {"width": 8}
    cfg.train.epochs, cfg.optim.lr = 1, 0.05
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def _final_weights(run_dir):
    return torch.load(run_dir / "final.pt", weights_only=True)["model"]


def test_channels_last_trains_the_same_model(tmp_path, monkeypatch):
    seen = []
    real = torch.nn.Conv2d.forward

    def spy(self, x):
        if x.shape[1] > 1:  # one channel is both layouts at once
            seen.append(x.is_contiguous(memory_format=torch.channels_last))
        return real(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    plain = train(_digits_cnn(), tmp_path / "plain", show_progress=False)
    assert not any(seen)
    seen.clear()
    cl = train(_digits_cnn(channels_last=True), tmp_path / "cl", show_progress=False)
    assert seen and all(seen)  # every batch reaches the convolutions channels-last
    a, b = _final_weights(tmp_path / "plain"), _final_weights(tmp_path / "cl")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert cl.identity["train.channels_last"] is True
    assert "train.channels_last" not in plain.identity  # neutral value: earlier runs match


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(tmp_path):
    eager = train(small(train__epochs=1), tmp_path / "eager", show_progress=False)
    compiled = train(
        small(train__epochs=1, train__compile=True), tmp_path / "c", show_progress=False
    )
    a, b = _final_weights(tmp_path / "eager"), _final_weights(tmp_path / "c")
    assert a.keys() == b.keys()  # the state dict of the model, not of the compiled wrapper
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert compiled.test.per_class == pytest.approx(eager.test.per_class, abs=0.03)


def test_a_finished_run_in_a_read_only_folder_is_reused_and_evaluated_elsewhere(
    tmp_path, monkeypatch, capsys
):
    """Runs as root ignore file modes, so a read-only folder is simulated through
    os.access; no lock may be taken there (it would need to write .lock)."""
    import os

    cfg_file = write_config(small(), tmp_path / "c.toml")
    run = tmp_path / "R"
    assert cli.main(["train", "--config", str(cfg_file), "--out", str(run)]) == 0
    before = json.loads((run / "result.json").read_text())
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == run else real(p, m))
    from mr2.engine import identity

    monkeypatch.setattr(identity.RunLock, "__enter__", lambda self: pytest.fail("locked"))
    assert train(small(), run, show_progress=False).test.per_class == before["test"]["per_class"]
    assert cli.main(["evaluate", str(run)]) == 2
    assert "is read-only): pass --out FILE.json" in capsys.readouterr().err
    assert cli.main(["evaluate", str(run), "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["per_class"] == before["test"]["per_class"]
    assert str(tmp_path / "e.json") in capsys.readouterr().out


def test_evaluating_a_run_on_data_of_other_classes_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "R"
    assert cli.main(["train", "--config", str(write_config(small(), tmp_path / "c.toml")),
                     "--out", str(run)]) == 0  # fmt: skip
    other = "data.options={num_classes = 3, dim = 8, n_train = 60, n_test = 30}"
    assert cli.main(["evaluate", str(run), "--set", other]) == 2
    err = capsys.readouterr().err
    assert "was trained on 5 classes but the data to evaluate" in err and "has 3" in err
    assert "Traceback" not in err
