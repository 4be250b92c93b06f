"""Dataset loaders on local files the tests make (and on the real Fashion-MNIST files)."""

import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fake_data import write_fake_archive
from mr2 import data
from mr2.data import cifar, idx
from required_data import DEBIAN_FASHION_MNIST, debian_fashion_mnist, shared


def write_idx(path: Path, array: np.ndarray) -> str:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (50, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(50) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(20) % 10,
    }
    folder = tmp_path / "files"
    folder.mkdir()
    sums = {n: {write_idx(folder / n, a)} for n, a in arrays.items()}
    monkeypatch.setitem(idx.SOURCES["mnist"], "files", sums)
    monkeypatch.setitem(idx.SOURCES["mnist"], "system", [])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MR2_DATA", raising=False)
    return folder, arrays


def test_idx_loads_local_files(fake_mnist):
    folder, arrays = fake_mnist
    ds = data.load("mnist", data_dir=str(folder), val_fraction=0.2, allow_download=False)
    assert ds.input_shape == (1, 28, 28) and len(ds.train) == 40 and len(ds.val) == 10
    assert torch.equal(ds.test.x[0, 0], torch.tensor(arrays["t10k-images-idx3-ubyte.gz"][0]) / 255)
    assert torch.equal(ds.test.y, torch.arange(20) % 10)


def test_idx_checksum_mismatch_and_missing(fake_mnist, monkeypatch):
    folder, _ = fake_mnist
    monkeypatch.setitem(idx.SOURCES["mnist"]["files"], "t10k-labels-idx1-ubyte.gz", {"0" * 32})
    with pytest.raises(ValueError, match="does not match its known checksum"):
        data.load("mnist", data_dir=str(folder), allow_download=False)
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz not found"):
        data.load("mnist", data_dir=str(folder / "nowhere"), allow_download=False)


def test_idx_download_verifies_and_caches(fake_mnist, monkeypatch, tmp_path):
    folder, _ = fake_mnist
    monkeypatch.setitem(idx.SOURCES["mnist"], "mirrors", (folder.as_uri(),))
    ds = data.load("mnist", data_dir=str(tmp_path / "empty"))  # downloads via file://
    assert len(ds.test) == 20
    assert (tmp_path / "cache" / "mr2" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    monkeypatch.setitem(idx.SOURCES["mnist"], "mirrors", ((tmp_path / "bad").as_uri(),))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache2"))
    with pytest.raises(FileNotFoundError, match="download failed"):
        data.load("mnist", data_dir=str(tmp_path / "empty"))
    assert not (tmp_path / "cache2").exists()  # no empty cache folders left behind


def test_real_fashion_mnist_matches_shared_copy():
    """The Debian package's official files decode to the arrays of ../shared (exact)."""
    debian_fashion_mnist()
    ref = np.load(shared("fashion_mnist", "fashion_mnist.npz"))
    ds = data.load(
        "fashion_mnist",
        data_dir=str(DEBIAN_FASHION_MNIST),
        val_fraction=0.0,
        allow_download=False,
    )
    assert torch.equal(ds.test.y, torch.from_numpy(ref["y_test"]))
    assert torch.equal((ds.test.x[:, 0] * 255).round().byte(), torch.from_numpy(ref["x_test"]))
    assert len(ds.train) == 60000 and ds.class_names[6] == "Shirt"


def test_cifar_archive_and_folder(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_fake_archive(archive, "cifar10", n_train=60, n_test=20)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="checksum"):
        data.load("cifar10", data_dir=str(tmp_path), allow_download=False)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(cifar.SOURCES, "cifar10", replace(cifar.SOURCES["cifar10"], md5={md5}))
    ds = data.load("cifar10", data_dir=str(tmp_path), val_fraction=0.1, allow_download=False)
    assert ds.input_shape == (3, 32, 32) and len(ds.test) == 20 and ds.class_names[3] == "class3"
    assert len(ds.train) + len(ds.val) == 60
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    folder = tmp_path / "extracted" / "cifar-10-batches-py"
    with pytest.raises(ValueError, match=r"batches.meta does not match the official file's MD5"):
        data.load("cifar10", data_dir=str(tmp_path / "extracted"), allow_download=False)
    sums = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in folder.iterdir()}
    monkeypatch.setitem(cifar.SOURCES, "cifar10", replace(cifar.SOURCES["cifar10"], members=sums))
    again = data.load(
        "cifar10", data_dir=str(tmp_path / "extracted"), val_fraction=0.1, allow_download=False
    )
    assert torch.equal(again.test.x, ds.test.x)


def test_cifar_pickle_runs_no_code(tmp_path, monkeypatch):
    """A member whose checksum was made to match still cannot run code when unpickled."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    payload = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    for member in cifar.SOURCES["cifar10"].members:
        (folder / member).write_bytes(payload)
    sums = {m: hashlib.md5(payload).hexdigest() for m in cifar.SOURCES["cifar10"].members}
    monkeypatch.setitem(cifar.SOURCES, "cifar10", replace(cifar.SOURCES["cifar10"], members=sums))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"refers to os\.system: refused"):
        data.load("cifar10", data_dir=str(tmp_path), allow_download=False)
    assert not (tmp_path / "pwned").exists()


def test_npz_pool_split_is_stratified_and_disjoint():
    path = str(shared("cifar10_jpeg", "cifar10_jpeg_test.npz"))
    ds = data.load("npz", path=path, val_fraction=0.1)
    assert len(ds.test) == 2000 and torch.equal(torch.bincount(ds.test.y), torch.full((10,), 200))
    assert torch.equal(torch.bincount(ds.val.y), torch.full((10,), 80))
    assert len(ds.train) + len(ds.val) + len(ds.test) == 10000
    assert ds.class_names[2] == "2"
    names = [f"c{i}" for i in range(10)]
    named = data.load("npz", path=path, class_names=names)
    assert named.class_names == names
    with pytest.raises(ValueError, match="class_names has 3 names"):
        data.load("npz", path=path, class_names=names[:3])
    flat = {tuple(v.tolist()) for v in ds.test.x.flatten(1)[:, ::97]}
    assert not any(tuple(v.tolist()) in flat for v in ds.val.x.flatten(1)[:, ::97])


def test_folder_of_images(tmp_path):
    from PIL import Image

    for split, n in (("train", 6), ("test", 2)):
        for c, colour in (("cat", 0), ("dog", 255)):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (10, 12), (colour, i, 0)).save(tmp_path / split / c / f"{i}.png")
    ds = data.load("folder", path=str(tmp_path), image_size=8, val_fraction=0.25)
    assert ds.class_names == ["cat", "dog"] and ds.input_shape == (3, 8, 8)
    assert len(ds.train) == 8 and len(ds.val) == 4 and len(ds.test) == 4
    assert torch.all(ds.test.x[ds.test.y == 1, 0] == 1.0)


def test_stratified_split_and_subset():
    y = np.repeat(np.arange(4), 25)
    rest, held = data.stratified_indices(y, 0.2, seed=3)
    assert len(set(rest) & set(held)) == 0 and len(rest) + len(held) == 100
    assert np.all(np.bincount(y[held]) == 5)
    assert np.array_equal(held, data.stratified_indices(y, 0.2, seed=3)[1])
    ds = data.load("synthetic", num_classes=4, n_train=50, train_subset=40)
    assert len(ds.train) == 40 and torch.all(torch.bincount(ds.train.y) == 10)


def test_random_crop_flip():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(data.random_crop_flip(x, g, padding=0, flip=False), x)
    out = data.random_crop_flip(x, g, padding=2, flip=False)
    for n in range(2):  # each output is a shifted window of the zero-padded input
        padded = torch.nn.functional.pad(x[n], (2, 2, 2, 2))
        assert any(
            torch.equal(out[n], padded[:, i : i + 5, j : j + 5]) for i in range(5) for j in range(5)
        )
    flipped = data.random_crop_flip(x.repeat(50, 1, 1, 1), g, padding=0)
    mirrored = sum(torch.equal(f, x[i % 2].flip(2)) for i, f in enumerate(flipped))
    assert 20 < mirrored < 80


def test_unknown_dataset_and_option():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("imagenet22k")
    with pytest.raises(ValueError, match="does not take option"):
        data.load("synthetic", path="x.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load("npz", path="/nonexistent.npz")


def test_float_labels_are_refused(tmp_path):
    path = tmp_path / "f.npz"
    x = np.zeros((20, 4), dtype=np.float32)
    np.savez(path, x_train=x, y_train=np.arange(20) % 2 + 0.7, x_test=x, y_test=np.arange(20) % 2)
    with pytest.raises(ValueError, match="y_train has dtype float64; labels must be integer"):
        data.load("npz", path=str(path))


def test_corrupt_gzip_is_a_checksum_error_and_the_demo_falls_back(fake_mnist, monkeypatch):
    from mr2 import demo

    folder, _ = fake_mnist
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")  # truncated gzip
    with pytest.raises(ValueError, match="does not match its known checksum"):
        data.load("mnist", data_dir=str(folder), allow_download=False)
    monkeypatch.setitem(idx.SOURCES["fashion_mnist"], "system", [])
    monkeypatch.setitem(idx.SOURCES["fashion_mnist"], "mirrors", ())
    target = folder / "fm"
    target.mkdir()
    (target / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    said = []
    cfg = demo.demo_config(data_dir=str(target), log=said.append)
    assert cfg.data.name == "digits" and "Falling back" in said[0]


def test_missing_ci_data_skips_for_users_and_fails_under_mr2_require_data(tmp_path, monkeypatch):
    import required_data

    absent = tmp_path / "nowhere.npz"
    monkeypatch.setattr(required_data, "REQUIRED", False)
    with pytest.raises(pytest.skip.Exception, match="set MR2_REQUIRE_DATA=1"):
        required_data.require(absent, "x", "how")
    monkeypatch.setattr(required_data, "REQUIRED", True)
    with pytest.raises(pytest.fail.Exception, match="MR2_REQUIRE_DATA is set"):
        required_data.require(absent, "x", "how")
    absent.write_bytes(b"")
    assert required_data.require(absent, "x", "how") == absent


def test_auto_augment_per_image_and_reproducible():
    torch.manual_seed(0)
    img = torch.rand(1, 3, 32, 32)
    batch = img.repeat(16, 1, 1, 1)  # one image 16 times: a per-image policy varies them
    first = data.auto_augment(batch, torch.Generator().manual_seed(5))
    again = data.auto_augment(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, again) and first.shape == batch.shape
    distinct = {tuple(o.flatten()[:64].tolist()) for o in first}
    assert len(distinct) > 4  # the policy is drawn per image, not once per batch
    assert 0 <= float(first.min()) and float(first.max()) <= 1
    torch.testing.assert_close(first * 255, (first * 255).round())  # uint8 levels
    before = torch.get_rng_state()
    data.auto_augment(batch, torch.Generator().manual_seed(6))
    assert torch.equal(before, torch.get_rng_state())  # the global RNG is left alone


def test_the_demo_fallback_names_the_demo_s_own_flag(tmp_path, monkeypatch):
    """Without Fashion-MNIST the demo says how to give it with `mr2 demo --data-dir`, the
    flag it has (not train's --set data.data_dir=DIR, which `mr2 demo` rejects)."""
    from mr2 import cli_args, demo

    monkeypatch.setitem(idx.SOURCES["fashion_mnist"], "system", [])
    monkeypatch.setitem(idx.SOURCES["fashion_mnist"], "mirrors", ())
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MR2_DATA", raising=False)
    said = []
    cfg = demo.demo_config(data_dir=str(tmp_path / "empty"), log=said.append)
    assert cfg.data.name == "digits"
    assert "mr2 demo --data-dir DIR" in said[0] and "--set" not in said[0]
    with pytest.raises(SystemExit):  # the flag it names is the demo's own
        cli_args.parser().parse_args(["demo", "--set", "data.data_dir=x"])
    assert cli_args.parser().parse_args(["demo", "--data-dir", "x"]).data_dir == "x"


def test_a_changed_image_folder_is_not_reused_as_the_same_run(tmp_path):
    """A folder dataset's identity holds its files' names, sizes and times: an added,
    removed or rewritten image makes a run of it another run (it was reused as stale)."""
    from PIL import Image

    from helpers import tiny_config
    from mr2.engine import identity

    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (6, 6), (i, 0, 0)).save(root / split / c / f"{i}.png")
    cfg = tiny_config()
    cfg.data.name, cfg.data.path, cfg.data.options = "folder", str(root), {"image_size": 6}
    first = identity.identity(cfg)
    assert identity.fingerprint(identity.identity(cfg)) == identity.fingerprint(first)
    Image.new("RGB", (6, 6), (9, 9, 9)).save(root / "train" / "cat" / "new.png")
    second = identity.identity(cfg)
    assert second[identity.DATA_HASH] != first[identity.DATA_HASH]
    (root / "train" / "cat" / "new.png").unlink()
    (root / "test" / "dog" / "0.png").write_bytes((root / "test" / "dog" / "1.png").read_bytes())
    assert identity.identity(cfg)[identity.DATA_HASH] not in (
        first[identity.DATA_HASH],
        second[identity.DATA_HASH],
    )


@pytest.mark.integration  # trains (a tiny run)
def test_split_follows_seed_gives_each_seed_its_own_draw_and_still_pools(tmp_path):
    """data.split_follows_seed: each seed carves its own validation split and training
    subset (a 2,000-image result must not rest on one draw); the methods of a seed share it,
    and the seeds still pool in one report."""
    from helpers import tiny_config
    from mr2 import report
    from mr2.engine import validate
    from mr2.engine.compare import run_compare
    from mr2.engine.run import load_data

    cfg = tiny_config()
    cfg.data.split_follows_seed, cfg.data.train_subset = True, 120
    draws = {}
    for seed in (0, 1):
        cfg.train.seed = seed
        ds = load_data(cfg)
        draws[seed] = (ds.train.x.sum().item(), ds.val.x.sum().item())
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]
    cfg.train.seed = 0
    assert load_data(cfg).val.x.sum().item() == draws[0][1]  # the same seed, the same draw
    cfg.data.split_seed = 3
    assert any("data.split_seed is not used" in p for p in validate.problems(cfg))
    cfg.data.split_seed = 0
    cfg.compare.methods, cfg.compare.seeds = ["ce", "mr2"], [0, 1]
    run_compare(cfg, tmp_path / "C", show_progress=False, log=lambda *_: None)
    assert len(report.build([tmp_path / "C"], tmp_path / "C").summary.runs) == 4
