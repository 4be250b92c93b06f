"""Post-hoc class offsets (``mr2.posthoc``) and the logits runs keep (``mr2.records.logits``):
hand-derived optima, the guarantee of never lowering the fit objective, offsets that follow
validation and never see test labels, files, models, the command and bad input."""

import hashlib
import json
import zlib

import numpy as np
import pytest
import torch

from helpers import tiny_comparison, tiny_config
from mr2 import cli
from mr2.engine.compare import run_compare
from mr2.posthoc import ClassOffsets, OffsetModel
from mr2.posthoc.fit import scores
from mr2.records.logits import (
    RunLogits,
    SplitLogits,
    load_logits,
    owner_of,
    owner_of_result,
    save_logits,
)
from mr2.records.result import read_result
from mr2.records.storage import CorruptFileError
from mr2.report import record_run


def binary(thresholds0, thresholds1):
    """Two classes whose sample i is predicted 1 iff t_i + (b1 - b0) > 0."""
    t = torch.tensor([*thresholds0, *thresholds1])
    z = torch.stack([torch.zeros_like(t), t], 1)
    y = torch.tensor([0] * len(thresholds0) + [1] * len(thresholds1))
    return z, y


def test_the_worst_class_optimum_of_a_hand_derived_case():
    # at b = 0 class 1 has recall 2/4; any shift d = b1 - b0 in (0.2, 1.5) gives both classes
    # 3/4 or more, and no shift gives both 4/4 (class 0's -0.5 and class 1's -1.5 conflict)
    z, y = binary([-3.0, -2.0, -1.0, -0.5], [-1.5, -0.2, 0.5, 2.0])
    fitted = ClassOffsets("worst").fit(z, y)
    assert fitted.before.worst == 0.5 and fitted.after.worst == 0.75
    d = float(fitted.offsets[1] - fitted.offsets[0])
    assert 0.2 < d < 1.5
    assert torch.equal(fitted.apply(z), z + fitted.offsets)


def random_case(seed, k=6, n=300):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    signal = torch.rand(k, generator=g) * 3
    z = torch.randn(n, k, generator=g) * (0.2 + 3 * torch.rand(1, generator=g))
    return z + torch.nn.functional.one_hot(y, k) * signal[y, None], y


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("objective", "options"),
    [("worst", {}), ("worst", {"tradeoff": 0.5}), ("hard", {}), ("hard", {"tradeoff": 0.9})],
)
def test_fitting_never_lowers_the_objective_on_the_fit_data(seed, objective, options):
    z, y = random_case(seed)
    fitted = ClassOffsets(objective, steps=30, **options).fit(z, y)
    a = fitted.tradeoff
    value = lambda s: (1 - a) * s.overall + a * (s.worst if objective == "worst" else s.hard)  # noqa: E731
    assert value(fitted.after) >= value(fitted.before)
    hard = fitted.hard_mask(z.shape[1])
    recomputed = scores(z, y, fitted.offsets, hard)  # the reported scores are the offsets'
    assert recomputed.worst == fitted.after.worst and recomputed.overall == fitted.after.overall


def test_min_overall_keeps_overall_accuracy_and_refuses_what_no_offsets_reach():
    z, y = random_case(3)
    base = ClassOffsets("worst", steps=1).fit(z, y).before
    fitted = ClassOffsets("worst", min_overall=base.overall - 0.02).fit(z, y)
    assert fitted.after.overall >= base.overall - 0.02 and fitted.after.worst >= base.worst
    with pytest.raises(ValueError, match=r"no offsets reach an overall accuracy of 1\.0000"):
        ClassOffsets("worst", min_overall=1.0).fit(z, y)


def test_offsets_follow_validation_when_test_disagrees_on_the_hard_class():
    """Validation says class 2 is the weak one, test says class 4: the offsets favour 2."""
    g = torch.Generator().manual_seed(0)

    def split(weak):
        y = torch.arange(600) % 6
        signal = torch.full((6,), 2.5)
        signal[weak] = 0.3
        return torch.randn(600, 6, generator=g) + torch.nn.functional.one_hot(y, 6) * signal[
            y, None
        ], y

    (zv, yv), (zt, yt) = split(2), split(4)
    fitted = ClassOffsets("worst").fit(zv, yv)
    assert int(fitted.offsets.argmax()) == 2
    assert (
        scores(zt, yt, fitted.offsets, torch.ones(6, dtype=torch.bool)).recall[4]
        <= scores(zt, yt, torch.zeros(6), torch.ones(6, dtype=torch.bool)).recall[4]
    )


def test_save_load_round_trip_refuses_tampering_and_other_class_counts(tmp_path):
    z, y = random_case(1)
    fitted = ClassOffsets("hard", tradeoff=0.7).fit(z, y)
    fitted.save(tmp_path / "o.json")
    loaded = ClassOffsets.load(tmp_path / "o.json")
    assert torch.equal(loaded.offsets, fitted.offsets)
    assert (loaded.objective, loaded.tradeoff, loaded.hard_classes) == (
        "hard",
        0.7,
        fitted.hard_classes,
    )
    data = json.loads((tmp_path / "o.json").read_text())
    data["offsets"][0] += 1.0
    (tmp_path / "o.json").write_text(json.dumps(data))
    with pytest.raises(CorruptFileError, match="changed since"):
        ClassOffsets.load(tmp_path / "o.json")
    with pytest.raises(ValueError, match="offsets for K = 6 applied to logits of K = 5"):
        fitted.apply(torch.zeros(2, 5))
    with pytest.raises(RuntimeError, match="not fit yet"):
        ClassOffsets().apply(z)


def test_a_wrapped_model_carries_the_offsets_and_scripts(tmp_path):
    from mr2 import models

    z, y = random_case(2, k=4)
    fitted = ClassOffsets("worst").fit(z, y)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 4))
    wrapped = fitted.wrap(net)
    x = torch.randn(3, 2, 4)
    assert torch.allclose(wrapped(x), net(x) + fitted.offsets)
    with pytest.warns(FutureWarning):  # torch deprecates TorchScript; it still scripts
        scripted = torch.jit.script(wrapped)
    assert torch.allclose(scripted(x), wrapped(x))
    exported = torch.export.export(wrapped, (x,))  # its successor for deployment
    assert torch.allclose(exported.module()(x), wrapped(x))
    assert torch.equal(wrapped.state_dict()["offsets"], fitted.offsets)
    mine = models.create("mlp", (1, 2, 4), 4, width=8)  # returns (logits, features)
    carried = fitted.wrap(mine)
    assert isinstance(carried, OffsetModel) and carried.features
    assert torch.allclose(carried(x), mine(x)[0] + fitted.offsets)


def test_bad_input_is_refused_with_what_is_wrong():
    z, y = random_case(0)
    bad = z.clone()
    bad[3, 1] = float("nan")
    cases = [
        ((bad, y), "logits of 1 sample"),
        ((z[:-1], y), "299 logits but 300 labels"),
        ((z, y.clone().fill_(7)), r"labels must lie in \[0, 6\)"),
        ((z, y % 5), r"classes \[5\] have no samples in the fit data"),
        ((z[:, 0], y), "float \\(N, K\\)"),
    ]
    for (logits, labels), message in cases:
        with pytest.raises(ValueError, match=message):
            ClassOffsets().fit(logits, labels)
    with pytest.raises(ValueError, match="tradeoff must lie in"):
        ClassOffsets(tradeoff=1.5)
    with pytest.raises(ValueError, match="objective must be"):
        ClassOffsets("mean")


def test_kept_logits_round_trip_exactly_and_refuse_changed_or_foreign_files(tmp_path):
    z = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    kept = RunLogits(SplitLogits(z, np.arange(20) % 4), SplitLogits(z * 1e5, np.arange(20) % 4))
    mine, other = owner_of("ce", 0, "abc"), owner_of("ce", 1, "abc")
    save_logits(tmp_path, kept, mine)
    back = load_logits(tmp_path, mine)
    assert back.val.logits.dtype == np.float32 and np.array_equal(back.val.logits, z)
    assert np.array_equal(back.test.logits, z * 1e5)
    with pytest.raises(CorruptFileError, match="holds another run's logits"):
        load_logits(tmp_path, other)  # copied into the run of seed 1
    with np.load(tmp_path / "logits.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["val_labels"] = arrays["val_labels"][::-1].copy()
    np.savez(tmp_path / "logits.npz", **arrays)
    with pytest.raises(CorruptFileError, match="fails its checksum"):
        load_logits(tmp_path)
    with pytest.raises(FileNotFoundError, match="kept no logits"):
        load_logits(tmp_path / "nowhere")


def test_logits_files_of_schema_1_still_load(tmp_path):
    """Files written before the owner and float32: float16 arrays, schema 1, sha256 of the
    arrays alone (written here the way that version wrote them)."""
    arrays = {"test_logits": np.ones((3, 2), np.float16), "test_labels": np.arange(3) % 2}
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    np.savez(tmp_path / "logits.npz", **arrays, schema=np.array(1), sha256=np.array(h.hexdigest()))
    back = load_logits(tmp_path, owner_of("ce", 0, None))  # no owner recorded: not checked
    assert back.val is None and back.test.logits.dtype == np.float16


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    return tiny_comparison(tmp_path_factory.mktemp("posthoc") / "C", ["ce", "focal"], [0, 1])


def test_engine_runs_keep_logits_that_give_their_test_accuracy(comparison):
    result = json.loads((comparison / "ce" / "seed0" / "result.json").read_text())
    kept = load_logits(comparison / "ce" / "seed0")
    assert kept.val is not None and len(kept.test.labels) == sum(result["test"]["support"])
    assert kept.test.logits.dtype == np.float32
    hits = kept.test.logits.argmax(1) == kept.test.labels
    per_class = [hits[kept.test.labels == c].mean() for c in range(len(result["test"]["support"]))]
    assert per_class == pytest.approx(result["test"]["per_class"], abs=1e-12)  # exactly


def test_mr2_posthoc_on_a_comparison_fits_on_validation_only(comparison, tmp_path, monkeypatch):
    seen = []
    real_fit = ClassOffsets.fit
    monkeypatch.setattr(
        ClassOffsets, "fit", lambda self, z, y: seen.append(y) or real_fit(self, z, y)
    )
    assert cli.main(["posthoc", str(comparison), "--out", str(tmp_path / "a")]) == 0
    for run, labels in zip(sorted(comparison.glob("*/seed*")), seen, strict=True):
        assert np.array_equal(labels, load_logits(run).val.labels)
    first = json.loads((comparison / "ce" / "seed0" / "offsets-worst.json").read_text())["offsets"]
    # the same fit with the test labels scrambled: test labels never reach the offsets
    for run in comparison.glob("*/seed*"):
        kept = load_logits(run)
        scrambled = SplitLogits(kept.test.logits, np.roll(kept.test.labels, 7))
        save_logits(run, RunLogits(kept.val, scrambled), owner_of_result(read_result(run)))
    assert cli.main(["posthoc", str(comparison), "--out", str(tmp_path / "b")]) == 0
    again = json.loads((comparison / "ce" / "seed0" / "offsets-worst.json").read_text())["offsets"]
    assert again == first
    text = (tmp_path / "a" / "posthoc-worst.md").read_text()
    assert "| ce | 0 |" in text and "| focal | 1 |" in text


def test_mr2_posthoc_on_a_recorded_run_and_runs_without_logits(tmp_path, capsys):
    z, y = random_case(4)
    record_run(tmp_path / "mine", method="m", seed=0, y_true=y, logits=z, val=(y, z))
    assert cli.main(["posthoc", str(tmp_path / "mine"), "--objective", "hard"]) == 0
    assert (tmp_path / "mine" / "offsets-hard.json").is_file()
    record_run(tmp_path / "plain", method="p", seed=0, y_true=y, y_pred=y)
    assert cli.main(["posthoc", str(tmp_path / "plain")]) == 2
    assert "1 run(s) kept no logits" in capsys.readouterr().err
    assert not list((tmp_path / "plain").glob("offsets-*"))


def test_a_run_whose_logits_are_too_large_is_refused_before_training(tmp_path, capsys):
    cfg = tiny_config()
    cfg.train.logits_max_mb = 1e-4
    from mr2.engine import config

    (tmp_path / "c.toml").write_text(config.to_toml(cfg))
    assert (
        cli.main(["train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")]) == 2
    )
    said = capsys.readouterr().err
    assert "above train.logits_max_mb = 0.0001" in said and "train.keep_logits = false" in said
    assert not (tmp_path / "r").exists()


def test_the_speed_benchmark_runs_in_its_tiny_mode(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "posthoc_speed.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--tiny",
            "--repeats",
            "1",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["environment"]["threads"] == 1 and len(saved["results"]) == 4
    worst = [r for r in saved["results"] if r["objective"] == "worst"]
    assert len(worst) == 2 and all(r["worst_after"] >= r["worst_before"] for r in worst)
    no_slack = worst[1]  # at the zero offsets' own accuracy: never below it
    assert no_slack["overall_after"] >= no_slack["options"]["min_overall"] - 1e-12


def _study(tmp_path, methods, seeds=range(10), k=5, n=100, gain=None):
    """Runs recorded with validation and test logits: every method draws like ERM (its own
    noise per seed); ``gain`` = (method, class, shift) adds shift to that class's true logit
    in that method's test logits only."""
    for method in methods:
        for seed in seeds:
            g = np.random.default_rng([seed, zlib.crc32(method.encode())])  # not hash(): salted
            y = np.repeat(np.arange(k), n // k)
            strength = np.linspace(0.4, 2.5, k)

            def draw(g=g, y=y, strength=strength):
                return g.normal(size=(len(y), k)) + np.eye(k)[y] * strength[y, None]

            zv, zt = draw(), draw()
            if gain and gain[0] == method:
                zt[y == gain[1], gain[1]] += gain[2]
            record_run(tmp_path / method / f"seed{seed}", method=method, seed=seed, y_true=y,
                       logits=zt, val=(y, zv))  # fmt: skip
    return tmp_path


def test_a_planted_hard_class_gain_is_recovered_at_matched_accuracy(tmp_path):
    from mr2.report.frontier import frontiers
    from mr2.report.results import collect

    # class 0, the weakest on validation (so in the hard third), gains on test only
    runs = _study(tmp_path / "a", ["ce", "planted"], gain=("planted", 0, 1.5))
    fronts = frontiers(collect([runs]), "ce")
    rows = [r for r in fronts.matched if r.method == "planted" and r.method_offsets]
    assert len(rows) == 4
    assert all(r.hard_gain.mean > 0.1 and r.hard_gain.p_holm < 0.05 for r in rows)
    assert set(fronts.curves) == {"ce", "planted"} and len(fronts.curves["ce"]) == 8
    fitted = fronts.curves["ce"][1:]  # after the point without offsets: by accuracy
    assert fronts.curves["ce"][0].drop is None
    assert [p.overall for p in fitted] == sorted((p.overall for p in fitted), reverse=True)
    # the same gain on the easiest class is no hard-third gain
    runs = _study(tmp_path / "b", ["ce", "planted"], gain=("planted", 4, 1.5))
    rows = [r for r in frontiers(collect([runs]), "ce").matched if r.method == "planted"]
    assert not any(r.hard_gain.mean > 0 and r.hard_gain.p_holm < 0.05 for r in rows)


def test_methods_drawn_like_the_reference_get_no_mark_at_matched_accuracy(tmp_path):
    from mr2 import report

    runs = _study(tmp_path, ["ce", "copy_a", "copy_b"], seeds=range(6))
    built = report.build([runs], tmp_path / "R")
    text = built.path.read_text()
    assert "No method lifts the worst class beyond ce + post-hoc offsets" in text
    assert (tmp_path / "R" / "frontier.png").is_file()


def test_the_report_says_which_runs_lack_logits_for_the_frontiers(tmp_path):
    from mr2 import report

    y = np.repeat(np.arange(3), 10)
    for method in ("ce", "m"):
        record_run(tmp_path / method, method=method, seed=0, y_true=y, y_pred=y)
    text = report.build([tmp_path], tmp_path / "R").path.read_text()
    assert "Not computed: 2 run(s) kept no validation and test logits" in text


def test_each_mr2_run_records_how_its_margins_follow_held_out_difficulty(tmp_path):
    """The report's per-run Spearman of the final margins with the run's validation error,
    against scipy on the recorded numbers; runs without margins have none."""
    from scipy import stats

    from mr2 import report
    from mr2.report.results import collect

    cfg = tiny_config()
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0, 1]
    run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    built = report.build([tmp_path / "C"], tmp_path / "C")
    rows = {(r.method, r.seed): r for r in built.summary.runs}
    for result in collect([tmp_path / "C"]):
        got = rows[result.method, result.seed].margin_difficulty_spearman
        if result.method == "ce":
            assert got is None
            continue
        margins = result.history[-1].margins
        error = 1 - np.asarray(result.val.per_class)
        assert got == pytest.approx(stats.spearmanr(margins, error).statistic)
    assert "MR²'s final margins against each run's held-out difficulty" in built.path.read_text()


def test_only_contrasts_at_a_reached_accuracy_can_be_marked(tmp_path):
    """A method far above the reference's accuracy: the reference + offsets cannot reach
    it, so the method alone at its own accuracy is no primary contrast (and its label says
    so); with offsets on both arms at the lower of the two accuracies every fit reaches the
    level, and that contrast is primary."""
    from mr2.report.frontier import frontiers
    from mr2.report.results import collect

    k, n = 5, 200
    y = np.repeat(np.arange(k), n // k)
    for method, strength in (("ce", np.linspace(0.4, 2.5, k)), ("strong", np.full(k, 4.0))):
        for seed in range(4):
            g = np.random.default_rng([seed, len(method)])
            zv, zt = (g.normal(size=(n, k)) + np.eye(k)[y] * strength[y, None] for _ in range(2))
            record_run(tmp_path / method / f"s{seed}", method=method, seed=seed, y_true=y,
                       logits=zt, val=(y, zv))  # fmt: skip
    rows = {(r.method, r.method_offsets, r.level.split(" (")[0]): r for r in
            frontiers(collect([tmp_path]), "ce", curves=False).matched}  # fmt: skip
    alone = rows["strong", False, "own accuracy"]
    assert not alone.primary and "fit(s) below it" in alone.level
    assert rows["strong", True, "lower of the two - 0 pt"].primary
