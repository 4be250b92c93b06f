"""The JPEG-bytes loader (all of CIFAR-10 in one 18 MB file): decoding against Pillow image
by image, the checksums, the cache, the stratified validation split, and the shared file."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fake_data import write_fake_archive
from mr2 import data
from mr2.data import jpeg
from mr2.records.storage import file_sha256
from required_data import shared


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mr2" / "cifar10_jpeg"


def _images(n: int, k: int, seed: int, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return x, np.arange(n) % k


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.npz"
    jpeg.write_jpeg_npz(path, {"train": _images(60, 3, 0), "test": _images(15, 3, 1)})
    return path


def _pillow(path, split: str) -> np.ndarray:
    """Each image decoded on its own: the independent reference."""
    with np.load(path) as d:
        blob, off = d[f"{split}_jpeg"], d[f"{split}_offsets"]
        return np.stack(
            [
                np.asarray(
                    Image.open(io.BytesIO(blob[off[i] : off[i + 1]].tobytes())).convert("RGB")
                )
                for i in range(len(off) - 1)
            ]
        )


def test_tiny_file_decodes_to_pillows_images_and_splits_stratified(tiny, cache_home):
    ds = data.load("cifar10_jpeg", path=str(tiny), sha256_of_file="", val_fraction=0.2, seed=3)
    ref_train, ref_test = _pillow(tiny, "train"), _pillow(tiny, "test")
    x_test = (ds.test.x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(x_test, ref_test)
    assert ds.num_classes == 3 and len(ds.train) == 48 and len(ds.val) == 12
    assert torch.bincount(ds.val.y).tolist() == [4, 4, 4]  # 20 % of each class of 20
    # train + val are the training images, each exactly once
    both = torch.cat([ds.train.x, ds.val.x]) * 255
    seen = sorted(
        hashlib.sha256(v.round().to(torch.uint8).numpy().tobytes()).hexdigest() for v in both
    )
    ref = sorted(
        hashlib.sha256(np.ascontiguousarray(v.transpose(2, 0, 1)).tobytes()).hexdigest()
        for v in ref_train
    )
    assert seen == ref
    assert "unverified" in ds.notes[0]


def test_cache_is_reused_and_a_corrupt_cache_is_replaced(tiny, cache_home, monkeypatch):
    first = data.load("cifar10_jpeg", path=str(tiny), sha256_of_file="")
    (cached,) = cache_home.glob("decoded_*.npz")
    calls = []
    monkeypatch.setattr(jpeg, "_decode", lambda *a: calls.append(1) or pytest.fail("decoded"))
    again = data.load("cifar10_jpeg", path=str(tiny), sha256_of_file="")
    assert "cached at" in again.notes[0] and torch.equal(first.test.x, again.test.x)
    # a flipped pixel in the cache: its checksum fails, the file is decoded again
    with np.load(cached) as d:
        arrays = {k: d[k].copy() for k in d.files}
    arrays["x_test"][0, 0, 0, 0] ^= 1
    np.savez(cached, **arrays)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home.parents[1]))
    fixed = data.load("cifar10_jpeg", path=str(tiny), sha256_of_file="")
    assert torch.equal(first.test.x, fixed.test.x)


def test_checksum_of_the_file_is_enforced(tiny, cache_home):
    with pytest.raises(ValueError, match=r"altered or is another one.*sha256_of_file"):
        data.load("cifar10_jpeg", path=str(tiny))  # default: the shared file's checksum
    right = file_sha256(tiny)
    assert data.load("cifar10_jpeg", path=str(tiny), sha256_of_file=right).num_classes == 3


def test_missing_file_and_bad_layouts_are_named(tmp_path, cache_home, monkeypatch):
    monkeypatch.delenv("MR2_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"cifar10_jpeg\.npz not found.*data\.path"):
        data.load("cifar10_jpeg", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load("cifar10_jpeg", path=str(tmp_path / "nope.npz"))
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="lacks keys"):
        data.load("cifar10_jpeg", path=str(other), sha256_of_file="")
    broken = tmp_path / "broken.npz"
    x, y = _images(4, 2, 0)
    jpeg.write_jpeg_npz(broken, {"train": (x, y), "test": (x, y)})
    with np.load(broken) as d:
        arrays = dict(d)
    arrays["train_offsets"] = arrays["train_offsets"][::-1].copy()
    np.savez(broken, **arrays)
    with pytest.raises(ValueError, match=r"train images do not decode.*offsets"):
        data.load("cifar10_jpeg", path=str(broken), sha256_of_file="")


def test_found_through_data_dir_and_mr2_data(tiny, tmp_path, cache_home, monkeypatch):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "cifar10_jpeg.npz").write_bytes(tiny.read_bytes())
    assert len(data.load("cifar10_jpeg", data_dir=str(folder), sha256_of_file="").test) == 15
    monkeypatch.setenv("MR2_DATA", str(folder))
    assert len(data.load("cifar10_jpeg", sha256_of_file="").test) == 15


def test_shared_file_all_of_cifar10(cache_home):
    path = shared("cifar10_jpeg", "cifar10_jpeg.npz")
    ds = data.load("cifar10_jpeg", path=str(path), val_fraction=0.1, seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (45_000, 5_000, 10_000)
    assert torch.bincount(ds.val.y).tolist() == [500] * 10
    assert ds.class_names[3] == "cat" and "sha256 verified" in ds.notes[0]
    # the decoded test images equal the older test-only file's (published: exactly)
    with np.load(shared("cifar10_jpeg", "cifar10_jpeg_test.npz")) as old:
        x_old, y_old = old["x"], old["y"]
    x_test = (ds.test.x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(x_test, x_old) and np.array_equal(ds.test.y.numpy(), y_old)


def test_compare_refuses_a_missing_or_altered_file_before_anything_trains(tiny, tmp_path):
    from mr2.engine import config
    from mr2.engine.compare import check_compare

    cfg = config.load(Path(__file__).parents[1] / "benchmarks" / "cifar10" / "cpu.toml")
    cfg.data.path = str(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match=r"absent\.npz does not exist"):
        check_compare(cfg)
    cfg.data.path = str(tiny)  # not the shared file: its checksum differs
    with pytest.raises(ValueError, match="altered or is another one"):
        check_compare(cfg)
    cfg.data.options = {"sha256_of_file": ""}  # a file of one's own, accepted on purpose
    check_compare(cfg)
    assert not (tmp_path / "out").exists()


@pytest.mark.integration  # trains (a tiny run)
def test_fast_recipe_takes_the_official_python_batches_or_the_jpeg_file(
    tiny, tmp_path, monkeypatch
):
    """configs/cifar10_fast.toml with data.name switched to the official CIFAR-10 archive (a
    small one in the official layout) or to a JPEG-bytes file trains through one pipeline."""
    from dataclasses import replace

    from mr2.data import cifar
    from mr2.engine import config
    from mr2.engine.train import train

    tiny = tmp_path / "tiny32.npz"  # CIFAR-sized images: the network pools three times
    jpeg.write_jpeg_npz(tiny, {"train": _images(60, 3, 0, 32), "test": _images(15, 3, 1, 32)})
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_fake_archive(archive, "cifar10", n_train=80, n_test=20)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(cifar.SOURCES, "cifar10", replace(cifar.SOURCES["cifar10"], md5={md5}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    recipe = Path(__file__).parents[1] / "configs" / "cifar10_fast.toml"
    results = {}
    for name, path, data_dir in (("cifar10", "", str(tmp_path)), ("cifar10_jpeg", str(tiny), "")):
        cfg = config.load(recipe)
        cfg.data.name, cfg.data.path, cfg.data.data_dir = name, path, data_dir
        if name == "cifar10_jpeg":
            cfg.data.options = {"sha256_of_file": ""}
        cfg.model.options = {"widths": [4, 4, 4]}
        cfg.train.epochs, cfg.train.batch_size, cfg.train.device = 1, 16, "cpu"
        results[name] = train(cfg, tmp_path / name, show_progress=False)
    assert results["cifar10"].dataset.num_classes == 10
    assert sum(results["cifar10"].test.support) == 20
    assert results["cifar10_jpeg"].dataset.num_classes == 3
    for r in results.values():  # the recipe's settings reached both runs
        assert r.config["train"]["channels_last"] and r.config["train"]["amp"]
