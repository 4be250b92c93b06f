"""Backbones through the engine, end to end on tiny random models and small image files:
fine-tuning, linear probing from the feature cache (reuse and invalidation), WiSE-FT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import torchrun_train
from mr2 import data as mr2_data
from mr2.backbones.cache import load_entry
from mr2.backbones.wiseft import interpolate
from mr2.cli import main
from mr2.engine import config
from mr2.engine.context import cpu_context
from mr2.engine.evaluate import evaluate
from mr2.engine.extract import extract
from mr2.engine.run import create_model, load_data, load_run_data
from mr2.engine.train import train
from mr2.engine.wise import run_wise
from mr2.engine.wise.run import logits_dir
from mr2.records.logits import load_logits
from mr2.records.wise import read_wise
from vision_fixtures import make_pets, tiny_backbone_options

FAMILY = {"clip": "clip", "clip_rn": "clip", "mae": "mae", "moco_v2": "moco_v2"}


def _cfg(tmp_path, backbone="moco_v2", probe=False, n=6, **sections):
    if not (tmp_path / "oxford-iiit-pet").is_dir():
        make_pets(tmp_path, n=n)
    cfg = config.from_dict(
        {
            "data": {
                "name": "pets",
                "data_dir": str(tmp_path),
                "val_fraction": 0.25,
                "allow_download": False,
            },
            "model": {
                "name": FAMILY[backbone],
                "options": tiny_backbone_options(backbone, tmp_path),
                "probe": probe,
                "cache_dir": str(tmp_path / "cache"),
            },
            "optim": {
                "name": "adamw",
                "lr": 1e-3,
                "weight_decay": 0.1,
                "warmup_steps": 1,
                "grad_clip": 1.0,
            },
            "train": {"epochs": 1, "batch_size": 3, "eval_batch_size": 4},
            "loss": {"name": "mr2"},
        }
    )
    for key, value in sections.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def _entries(tmp_path) -> set[str]:
    return (
        {p.name for p in (tmp_path / "cache").iterdir()} if (tmp_path / "cache").is_dir() else set()
    )


@pytest.mark.parametrize("backbone", sorted(FAMILY))
def test_fine_tuning_runs_end_to_end(tmp_path, backbone):
    cfg = _cfg(tmp_path, backbone)
    result = train(cfg, tmp_path / "run", show_progress=False)
    assert len(result.test.per_class) == 3 and sum(result.test.support) == 6
    assert result.dataset.sizes == {"train": 9, "val": 3, "test": 6}
    _, initial = load_run_data(cfg, cpu_context())
    final = torch.load(tmp_path / "run" / "final.pt", weights_only=True)["model"]
    changed = [
        k
        for k, v in initial.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, final[k])
    ]
    assert any(k.startswith("encoder.") for k in changed)  # the backbone itself is trained
    assert "head.weight" in changed
    assert not _entries(tmp_path)  # fine-tuning never touches the feature cache


def test_fine_tuning_under_bf16_autocast(tmp_path):
    result = train(_cfg(tmp_path, "clip", train__amp=True), tmp_path / "amp", show_progress=False)
    assert all(np.isfinite(h.train_loss) for h in result.history)
    assert result.history[0].margins  # MR²'s statistics were updated


def test_pretrained_zero_shot_head_is_computed_once_per_process(tmp_path, monkeypatch):
    from mr2 import backbones
    from mr2.backbones import clip

    folder = tmp_path / "clip"
    torch.manual_seed(0)
    tiny_backbone_options("clip", tmp_path)
    import open_clip

    torch.save(
        open_clip.create_model(f"local-dir:{folder}").state_dict(),
        folder / "open_clip_pytorch_model.bin",
    )
    calls = []
    real = clip.zero_shot_weights
    monkeypatch.setattr(clip, "zero_shot_weights", lambda *a: calls.append(1) or real(*a))
    options = {"arch": f"local-dir:{folder}", "prompts": "single"}
    first = backbones.create("clip", 3, class_names=["a", "b", "c"], **options)
    torch.manual_seed(1)  # pre-trained: the seed changes nothing
    second = backbones.create("clip", 3, class_names=["a", "b", "c"], **options)
    assert len(calls) == 1 and torch.equal(first.head.weight, second.head.weight)
    assert first.identity["weights"] == "local-dir"
    backbones.create("clip", 3, class_names=["a", "b", "d"], **options)  # other names
    assert len(calls) == 2
    with pytest.raises(ValueError, match="leave weights empty"):
        backbones.create("clip", 3, class_names=["a", "b", "c"], weights="x.pt", **options)


@pytest.mark.parametrize("backbone", sorted(FAMILY))
def test_probe_trains_on_cached_features_equal_to_the_backbones(tmp_path, backbone):
    cfg = _cfg(tmp_path, backbone, probe=True)
    train(cfg, tmp_path / "probe", show_progress=False)
    entries = _entries(tmp_path)
    assert len(entries) == 3  # train, val, test
    # independent recomputation: the seeded backbone on the preprocessed images
    dataset = load_data(cfg)
    torch.manual_seed(cfg.train.seed)
    net = create_model(cfg, dataset).eval()
    fitted = mr2_data.preprocessed(dataset, net.preprocess)
    for entry in entries:
        feats, labels, meta = load_entry(tmp_path / "cache" / entry)
        split = getattr(fitted, meta["split"]["name"])
        assert torch.equal(labels, split.y)
        with torch.no_grad():
            direct = net.features(split.x[np.arange(len(split))])
        assert torch.allclose(feats, direct, atol=1e-5)
        assert meta["backbone"]["preprocess"] == net.preprocess.to_dict()
    # a second run with another loss reuses the cache: nothing is extracted again
    mtimes = {e: (tmp_path / "cache" / e / "features.npy").stat().st_mtime_ns for e in entries}
    again = train(
        _cfg(tmp_path, backbone, probe=True, loss__name="ce"),
        tmp_path / "probe2",
        show_progress=False,
    )
    assert _entries(tmp_path) == entries
    assert mtimes == {
        e: (tmp_path / "cache" / e / "features.npy").stat().st_mtime_ns for e in entries
    }
    assert all(info["reused"] for info in extract(cfg).values())
    assert len(again.test.per_class) == 3
    # diagnose reads the probe's features back from the cache
    from mr2.engine.diagnose import diagnose_run

    diag = diagnose_run(tmp_path / "probe")
    assert len(diag.spread) == 3 and _entries(tmp_path) == entries


def test_cache_is_invalidated_by_backbone_and_preprocessing_only(tmp_path):
    cfg = _cfg(tmp_path, "clip")
    first = {k: v["key"] for k, v in extract(cfg).items()}
    assert not any(v["reused"] for v in extract(_cfg(tmp_path, "moco_v2")).values())
    other_prompts = _cfg(tmp_path, "clip")
    other_prompts.model.options["prompts"] = "single"  # the head, not the features
    assert {k: v["key"] for k, v in extract(other_prompts).items()} == first
    other_weights = _cfg(tmp_path, "clip", train__seed=1)  # random init: other weights
    assert not set(first.values()) & {v["key"] for v in extract(other_weights).values()}
    moco = _cfg(tmp_path, "moco_v2")
    resized = _cfg(tmp_path, "moco_v2")
    resized.model.options["image_size"] = 40  # other preprocessing
    keys = {v["key"] for v in extract(moco).values()}
    assert not keys & {v["key"] for v in extract(resized).values()}
    unnormalised = _cfg(tmp_path, "clip")
    unnormalised.model.options["normalize"] = False
    assert not set(first.values()) & {v["key"] for v in extract(unnormalised).values()}


def test_interrupted_extraction_leaves_no_entry(tmp_path, monkeypatch):
    from mr2.backbones import cache

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_extract_into", crash)
    with pytest.raises(KeyboardInterrupt):
        extract(_cfg(tmp_path))
    assert not [p for p in _entries(tmp_path) if ".tmp-" not in p]
    monkeypatch.undo()
    assert not any(v["reused"] for v in extract(_cfg(tmp_path)).values())


def test_probe_learns_a_colour_coded_task(tmp_path):
    cfg = _cfg(
        tmp_path,
        "moco_v2",
        probe=True,
        n=12,
        loss__name="ce",
        train__epochs=40,
        train__batch_size=8,
        optim__lr=0.05,
        optim__weight_decay=0.0,
    )
    result = train(cfg, tmp_path / "run", show_progress=False)
    assert result.test.overall >= 0.9  # chance is 1/3


@pytest.mark.slow
def test_probe_from_in_memory_images(tmp_path):
    cfg = _cfg(tmp_path, "moco_v2", probe=True)
    cfg.data = config.DataConfig(name="digits", val_fraction=0.2)
    cfg.train.batch_size = 64
    result = train(cfg, tmp_path / "digits", show_progress=False)
    assert len(result.test.per_class) == 10
    metas = [
        json.loads((tmp_path / "cache" / e / "meta.json").read_text()) for e in _entries(tmp_path)
    ]
    assert {m["split"]["inputs"] for m in metas} == {"tensor"}


@pytest.mark.parametrize("backbone", sorted(FAMILY))
def test_wise_ft_endpoints_and_midpoint(tmp_path, backbone):
    cfg = _cfg(tmp_path, backbone, train__epochs=2, optim__lr=1e-2)
    result = train(cfg, tmp_path / "ft", show_progress=False)
    out = run_wise(tmp_path / "ft", [1.0, 0.0, 0.5])
    rows = {r.alpha: r.test for r in out.rows}
    assert sorted(rows) == [0.0, 0.5, 1.0]
    # alpha 1 = the fine-tuned model's own test evaluation (the same typed record)
    assert rows[1.0].per_class == result.test.per_class
    assert rows[1.0].confusion == result.test.confusion
    # alpha 0 = the zero-shot model, built and evaluated independently here
    dataset, zero_shot = load_run_data(cfg, cpu_context())
    direct = evaluate(zero_shot, dataset.test, 3, batch_size=4, device=torch.device("cpu"))
    assert rows[0.0].per_class == direct.accuracy.tolist()
    # alpha 0.5: the evaluation of the hand-averaged weights
    final = torch.load(tmp_path / "ft" / "final.pt", weights_only=True)["model"]
    start = zero_shot.state_dict()
    zero_shot.load_state_dict(
        {k: (start[k] + final[k]) / 2 if final[k].is_floating_point() else final[k] for k in final}
    )
    mid = evaluate(zero_shot, dataset.test, 3, batch_size=4, device=torch.device("cpu"))
    assert rows[0.5].per_class == mid.accuracy.tolist()
    # each alpha kept its logits: they give that alpha's per-class test accuracy
    kept = load_logits(logits_dir(tmp_path / "ft", 0.5))
    assert np.array_equal(kept.test.labels, np.asarray(dataset.test.y))
    hits = kept.test.logits.argmax(1) == kept.test.labels
    by_class = [float(hits[kept.test.labels == c].mean()) for c in range(3)]
    np.testing.assert_allclose(by_class, rows[0.5].per_class, atol=1e-6)
    assert kept.val is not None and len(kept.val.labels) == len(dataset.val)
    best = max(out.rows, key=lambda r: r.val.summary["mean_class"])
    assert out.selected_alpha == best.alpha
    assert json.loads((tmp_path / "ft" / "wise.json").read_text())["rows"][0]["alpha"] == 0.0
    # the file reads back as the record written (compared as JSON: NaN != NaN)
    assert json.dumps(read_wise(tmp_path / "ft").to_dict()) == json.dumps(out.to_dict())


def test_interpolate_by_hand():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor(7)}
    mid = interpolate(a, b, 0.25)
    assert torch.equal(mid["w"], torch.tensor([1.0, 3.0])) and int(mid["n"]) == 7
    assert torch.equal(interpolate(a, b, 0.0)["w"], a["w"])
    assert torch.equal(interpolate(a, b, 1.0)["w"], b["w"])
    with pytest.raises(ValueError, match="alpha"):
        interpolate(a, b, 1.5)
    with pytest.raises(ValueError, match="differ"):
        interpolate(a, {"w": b["w"]}, 0.5)


def test_cli_extract_and_wise(tmp_path, capsys):
    cfg = _cfg(tmp_path, "mae")
    path = tmp_path / "cfg.toml"
    path.write_text(config.to_toml(cfg))
    assert main(["extract", "--config", str(path)]) == 0
    assert capsys.readouterr().out.count("extracted in") == 3
    assert main(["extract", "--config", str(path)]) == 0
    assert capsys.readouterr().out.count("reused") == 3
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    assert main(["wise", str(tmp_path / "run"), "--alphas", "0", "0.6", "1"]) == 0
    assert "| 0.6" in capsys.readouterr().out
    mlp = ["--set", "model.name=mlp", "--set", "model.options={}"]
    assert main(["extract", "--config", str(path), *mlp]) == 2
    assert "needs a pre-trained backbone" in capsys.readouterr().err
    bad = config.to_toml(cfg).replace("model_kwargs = {", "modle_kwargs = {")
    path.write_text(bad)
    assert main(["extract", "--config", str(path)]) == 2
    assert "does not take it (did you mean 'model_kwargs'?)" in capsys.readouterr().err


@pytest.mark.ddp
def test_probe_under_torchrun_matches_one_process(tmp_path):
    cfg = _cfg(tmp_path, "moco_v2", probe=True, train__batch_size=4, train__epochs=2)
    path = tmp_path / "cfg.toml"
    path.write_text(config.to_toml(cfg))
    torchrun_train(path, tmp_path / "ddp")
    ddp = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert ddp["world_size"] == 2 and len(_entries(tmp_path)) == 3  # extracted once
    # the two processes wrote alternate rows of each entry: all equal to one process's
    dataset = load_data(cfg)
    torch.manual_seed(cfg.train.seed)
    net = create_model(cfg, dataset).eval()
    fitted = mr2_data.preprocessed(dataset, net.preprocess)
    for entry in _entries(tmp_path):
        feats, _, meta = load_entry(tmp_path / "cache" / entry)
        split = getattr(fitted, meta["split"]["name"])
        with torch.no_grad():
            direct = net.features(split.x[np.arange(len(split))])
        assert torch.allclose(feats, direct, atol=1e-5)
    single = train(cfg, tmp_path / "one", show_progress=False)
    a = torch.load(tmp_path / "ddp" / "final.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "one" / "final.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert ddp["test"]["confusion"] == single.test.confusion


def test_cache_follows_weights_content_and_precision_not_file_paths(tmp_path):
    import shutil

    from mr2 import backbones

    torch.manual_seed(5)
    net = backbones.create(
        "mae", 3, model_kwargs=tiny_backbone_options("mae", tmp_path)["model_kwargs"]
    )
    torch.save(net.encoder.state_dict(), tmp_path / "a.pth")
    shutil.copy(tmp_path / "a.pth", tmp_path / "b.pth")
    cfg = _cfg(tmp_path, "mae")
    cfg.model.options["weights"] = str(tmp_path / "a.pth")
    first = extract(cfg)
    moved = _cfg(tmp_path, "mae", train__seed=3)  # seed irrelevant: weights come from the file
    moved.model.options["weights"] = str(tmp_path / "b.pth")
    again = extract(moved)
    assert all(v["reused"] for v in again.values())
    assert {k: v["key"] for k, v in again.items()} == {k: v["key"] for k, v in first.items()}
    bf16 = _cfg(tmp_path, "mae", train__amp=True)  # bfloat16 autocast on CPU
    bf16.model.options["weights"] = str(tmp_path / "a.pth")
    assert not any(v["reused"] for v in extract(bf16).values())


@pytest.mark.slow
def test_compare_runs_wise_ft_and_reports_it(tmp_path):
    from mr2 import report
    from mr2.engine.compare import run_compare

    cfg = _cfg(tmp_path, "moco_v2")
    cfg.compare.methods, cfg.compare.seeds, cfg.compare.wise_alphas = (
        ["ce", "mr2"],
        [0, 1],
        [0.0, 0.6, 1.0],
    )
    run_compare(cfg, tmp_path / "cmp", log=lambda *_: None, show_progress=False)
    built = report.build([tmp_path / "cmp"], tmp_path / "cmp")
    wise = built.summary.wise
    assert sorted(wise) == ["ce", "mr2"] and sorted(wise["mr2"].alphas) == ["0", "0.6", "1"]
    # alpha 1 is the fine-tuned model: its row equals the main table's statistics
    for method in ("ce", "mr2"):
        main_row = built.summary.methods[method].summary
        for field in ("overall", "hard", "worst_class"):
            assert wise[method].alphas["1"][field].mean == pytest.approx(
                100 * main_row[field].mean
            )  # the main summary holds fractions
    # one value by hand: alpha 0.6, mr2, seed s's hard third ranked on ce's validation
    # accuracy of the other seed (never on a test accuracy)
    ce_val = {
        s: json.loads((tmp_path / "cmp" / "ce" / f"seed{s}" / "result.json").read_text())["val"][
            "per_class"
        ]
        for s in (0, 1)
    }
    hards = []
    for s in (0, 1):
        rows = json.loads((tmp_path / "cmp" / "mr2" / f"seed{s}" / "wise.json").read_text())
        row = next(r for r in rows["rows"] if r["alpha"] == 0.6)
        ref = np.asarray(ce_val[1 - s])
        hard = np.argsort(-ref, kind="stable")[-(len(ref) // 3) :]  # the last floor(K / 3)
        hards.append(np.mean(np.asarray(row["test"]["per_class"])[hard]) * 100)
    assert wise["mr2"].alphas["0.6"]["hard"].mean == pytest.approx(np.mean(hards))
    assert "## WiSE-FT" in (tmp_path / "cmp" / "report.md").read_text()
    with pytest.raises(ValueError, match="needs a pre-trained backbone"):
        bad = _cfg(tmp_path, "moco_v2")
        bad.model = config.ModelConfig(name="mlp")
        bad.compare.wise_alphas = [0.5]
        run_compare(bad, tmp_path / "bad", log=lambda *_: None)


def test_bad_backbone_settings_name_the_problem(tmp_path):
    from mr2.engine.validate import check_run

    with pytest.raises(ValueError, match=r"model\.probe needs a pre-trained backbone"):
        train(
            _cfg(tmp_path, model__name="mlp", model__options={}, model__probe=True),
            tmp_path / "x",
            show_progress=False,
        )
    with pytest.raises(ValueError, match="wise_alphas must lie in"):
        check_run(config.load(None, ["compare.wise_alphas=[0.5, 1.5]"]))
    with pytest.raises(FileNotFoundError, match=r"config\.toml"):
        run_wise(tmp_path / "nothing", [0.5])


def test_zero_shot_is_a_method_of_the_comparison(tmp_path, capsys):
    from mr2 import report
    from mr2.engine.compare import run_compare

    cfg = _cfg(tmp_path, "clip")
    cfg.compare.methods, cfg.compare.seeds, cfg.compare.zero_shot = ["ce"], [0, 1], True
    run_compare(cfg, tmp_path / "cmp", log=lambda *_: None, show_progress=False)
    summary = report.build([tmp_path / "cmp"], tmp_path / "cmp").summary
    assert sorted(summary.methods) == ["ce", "zero_shot"]
    for seed in (0, 1):  # independently: the seeded initial model on the test split
        run = json.loads(
            (tmp_path / "cmp" / "zero_shot" / f"seed{seed}" / "result.json").read_text()
        )
        cfg.train.seed = seed
        dataset, model = load_run_data(cfg, cpu_context())
        direct = evaluate(model, dataset.test, 3, batch_size=4, device=torch.device("cpu"))
        assert run["test"]["per_class"] == direct.accuracy.tolist()
        assert (
            run["val"]["per_class"]
            == evaluate(
                model, dataset.val, 3, batch_size=4, device=torch.device("cpu")
            ).accuracy.tolist()
        )
        assert not (tmp_path / "cmp" / "zero_shot" / f"seed{seed}" / "final.pt").exists()
    path = tmp_path / "cfg.toml"
    path.write_text(config.to_toml(cfg))
    assert main(["evaluate", "--config", str(path), "--out", str(tmp_path / "zs")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert (tmp_path / "zs" / "result.json").is_file()


@pytest.mark.ddp
def test_fine_tuning_under_torchrun_matches_one_process(tmp_path):
    # ViT: no BatchNorm; SGD: AdamW would blow float-order noise of near-zero gradients up
    # to a fraction of a step
    cfg = _cfg(
        tmp_path, "clip", train__batch_size=4, train__epochs=2, optim__name="sgd", optim__lr=0.05
    )
    path = tmp_path / "cfg.toml"
    path.write_text(config.to_toml(cfg))
    torchrun_train(path, tmp_path / "ddp")
    ddp = json.loads((tmp_path / "ddp" / "result.json").read_text())
    single = train(cfg, tmp_path / "one", show_progress=False)
    a = torch.load(tmp_path / "ddp" / "final.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "one" / "final.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert ddp["world_size"] == 2 and ddp["test"]["confusion"] == single.test.confusion
    _, initial = load_run_data(cfg, cpu_context())
    moved = (a["encoder.conv1.weight"] - initial.state_dict()["encoder.conv1.weight"]).abs()
    assert moved.max() > 1e-3  # both really trained: the match is not of untouched weights
