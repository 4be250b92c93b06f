"""Commands check the optional packages they need before they train or write anything."""

import importlib.util

import pytest

from helpers import tiny_config
from mr2 import cli, extras, report
from mr2.engine import config
from mr2.engine.train import train


def without(monkeypatch, *modules):
    real = importlib.util.find_spec
    monkeypatch.setattr(extras, "find_spec", lambda m: None if m in modules else real(m))


@pytest.mark.parametrize("command", ["compare", "demo"])
def test_compare_and_demo_stop_before_training_without_the_report_packages(
    command, tmp_path, monkeypatch, capsys
):
    without(monkeypatch, "matplotlib", "scipy")
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(tiny_config()))
    argv = ["compare", "--config", str(path)] if command == "compare" else ["demo"]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "needs matplotlib and scipy: pip install 'mr2[report]'" in err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_a_report_is_not_half_written_without_its_packages(tmp_path, monkeypatch):
    train(tiny_config(), tmp_path / "ce" / "seed0", show_progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    without(monkeypatch, "scipy")
    with pytest.raises(ImportError, match=r"a report .* needs scipy: pip install 'mr2\[report\]'"):
        report.build([tmp_path], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results.json, report.md
    monkeypatch.undo()
    report.build([tmp_path], tmp_path)
    assert (tmp_path / "report.md").is_file()


def test_a_mistyped_reference_is_an_error_naming_the_methods(tmp_path, capsys):
    train(tiny_config(), tmp_path / "ce" / "seed0", show_progress=False)
    assert cli.main(["report", str(tmp_path), "--reference", "cee"]) == 2
    assert "reference method 'cee' has no run here; methods: ce" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_mr2_losses_lists_the_loop_level_methods(capsys):
    assert cli.main(["losses"]) == 0
    out = capsys.readouterr().out
    for name, loss in (("jtt", "ce"), ("lff", "ce"), ("drw", "ldam")):
        assert any(line.startswith(name) and f"[loss: {loss}]" in line for line in out.splitlines())
