"""The torchvision-backed datasets on tiny copies of their official layouts: splits,
labels, class names, CoOp split files, lazily decoded images and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mr2 import data
from mr2.backbones.base import Preprocess
from mr2.data.lazy import LazyImages, MappedTensor
from vision_fixtures import MAKERS, coop_split_file, make_flowers, make_pets

PLAIN = Preprocess(16, 16, "bilinear", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # no normalisation

# (train, val, test) sizes from the fixtures' 3 classes x 6 images: pets / food / cars /
# imagenet put every third image in test; flowers / aircraft have official val splits
SIZES = {
    "pets": (9, 3, 6),  # 4 trainval per class, 1 carved for val (val_fraction 0.25)
    "food101": (9, 3, 6),
    "cars": (9, 3, 6),
    "imagenet": (9, 3, 6),
    "flowers102": (9, 3, 6),  # 3 train / 1 val / 2 test per class
    "aircraft": (9, 3, 6),
}


def _load(name, root, **kw):
    extra = {"verify": False} if name == "flowers102" else {}
    return data.load(
        name, data_dir=str(root), val_fraction=0.25, seed=0, allow_download=False, **extra, **kw
    )


def _colour_label(images: torch.Tensor) -> list[int]:
    """Invert the fixtures' colour code: the label whose base colour is nearest."""
    base = torch.tensor([[(c * 67) % 256, (c * 131) % 256, (c * 29 + 90) % 256] for c in range(3)])
    mean = images.mean((2, 3)) * 255
    return torch.cdist(mean, base.float()).argmin(1).tolist()


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_official_layouts_load_with_their_splits(tmp_path, name):
    MAKERS[name](tmp_path)
    ds = _load(name, tmp_path)
    assert (len(ds.train), len(ds.val), len(ds.test)) == SIZES[name]
    for split in (ds.train, ds.val, ds.test):
        assert isinstance(split.x, LazyImages)
        assert sorted(set(split.y.tolist())) == [0, 1, 2]
        images = split.x.with_transform(PLAIN.pil_transform())[np.arange(len(split))]
        assert images.shape == (len(split), 3, 16, 16)
        assert _colour_label(images) == split.y.tolist()  # each row is its labelled file
    train_files = {ds.train.x.paths[r] for r in ds.train.x.rows}
    held = {ds.val.x.paths[r] for r in ds.val.x.rows} | {ds.test.x.paths[r] for r in ds.test.x.rows}
    assert not train_files & held


def test_class_names_for_prompts(tmp_path):
    assert _load("pets", (make_pets(tmp_path), tmp_path)[1]).class_names == [
        "Breed A",
        "Breed B",
        "Breed C",
    ]
    MAKERS["food101"](tmp_path)
    assert _load("food101", tmp_path).class_names == ["dish a", "dish b", "dish c"]
    MAKERS["cars"](tmp_path)
    assert _load("cars", tmp_path).class_names[1] == "Maker Model 1 2011"
    make_flowers(tmp_path)
    flowers = _load("flowers102", tmp_path)
    assert flowers.num_classes == 102 and flowers.class_names[0] == "pink primrose"


def test_dataset_folder_given_as_data_path(tmp_path):
    make_pets(tmp_path / "elsewhere")
    ds = data.load(
        "pets",
        path=str(tmp_path / "elsewhere" / "oxford-iiit-pet"),
        allow_download=False,
        val_fraction=0.25,
    )
    assert len(ds.train) == 9 and str(tmp_path / "elsewhere") in ds.notes[0]
    with pytest.raises(ValueError, match="must be a folder named oxford-iiit-pet"):
        data.load("pets", path=str(tmp_path / "elsewhere"), allow_download=False)


def test_decoding_threads_option(tmp_path):
    make_pets(tmp_path)
    ds = _load("pets", tmp_path, threads=1)
    assert {ds.train.x.threads, ds.val.x.threads, ds.test.x.threads} == {1}
    one = ds.test.x.with_transform(PLAIN.pil_transform())[np.arange(6)]
    many = _load("pets", tmp_path, threads=4).test.x.with_transform(PLAIN.pil_transform())
    assert torch.equal(one, many[np.arange(6)])  # threads change speed, not the batch


def test_imagenet_wnid_folders_get_clips_names(tmp_path):
    from mr2.data.vision import _imagenet_names

    wnids = [f"n{i:08d}" for i in range(1000)]
    names = _imagenet_names(wnids)
    assert names[0] == "tench" and names[999] == "toilet paper" and len(names) == 1000
    MAKERS["imagenet"](tmp_path)
    assert _load("imagenet", tmp_path).class_names == ["n01440764", "n01440765", "n01440766"]


def test_coop_split_file_defines_all_three_splits(tmp_path):
    make_pets(tmp_path)
    rows = [
        (f"Breed_{chr(65 + c)}_{i + 1}.jpg", c, f"breed_{chr(97 + c)}")
        for c in range(3)
        for i in range(6)
    ]
    split_file = coop_split_file(
        tmp_path / "split_zhou_OxfordPets.json",
        {
            "train": [r for r in rows if int(r[0].split("_")[-1][:-4]) <= 3],
            "val": [r for r in rows if int(r[0].split("_")[-1][:-4]) == 4],
            "test": [r for r in rows if int(r[0].split("_")[-1][:-4]) >= 5],
        },
    )
    ds = _load("pets", tmp_path, split_file=str(split_file))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (9, 3, 6)
    assert ds.class_names == ["breed a", "breed b", "breed c"]
    for split in (ds.train, ds.val, ds.test):
        images = split.x.with_transform(PLAIN.pil_transform())[np.arange(len(split))]
        assert _colour_label(images) == split.y.tolist()
    bad = coop_split_file(tmp_path / "bad.json", {"train": [], "test": []})
    with pytest.raises(ValueError, match="lacks \\['val'\\]"):
        _load("pets", tmp_path, split_file=str(bad))
    with pytest.raises(FileNotFoundError, match="split file"):
        _load("pets", tmp_path, split_file=str(tmp_path / "missing.json"))


def test_missing_data_and_files_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no oxford-iiit-pet/ folder"):
        _load("pets", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        data.load("cars", data_dir=str(tmp_path / "empty"), allow_download=True)
    make_flowers(tmp_path)
    with pytest.raises(FileNotFoundError, match="verify = false skips it"):  # MD5 of .mat files
        data.load("flowers102", data_dir=str(tmp_path), allow_download=False)
    make_pets(tmp_path)
    ds = _load("pets", tmp_path)
    with pytest.raises(ValueError, match="no preprocessing yet"):
        ds.train.x[[0]]
    lazy = ds.test.x.with_transform(PLAIN.pil_transform())
    (tmp_path / "oxford-iiit-pet" / "images" / "Breed_A_1.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"Breed_A_1\.jpg is missing"):
        lazy[np.arange(len(lazy))]


def test_lazy_sources_behave_like_tensors():
    x = torch.rand(10, 1, 8, 8)
    mapped = MappedTensor(x, lambda b: b * 2)
    sub = mapped.subset(torch.tensor([7, 2, 5]))
    assert torch.equal(sub[torch.tensor([0, 2])], x[[7, 5]] * 2)
    assert sub.shape == (3, 1, 8, 8) and len(sub) == 3
    assert torch.equal(torch.cat(list(mapped.split(4))), x * 2)
    ds = data.Dataset(
        "t",
        data.Split(x, torch.arange(10) % 2),
        data.Split(x[:2], torch.zeros(2)),
        data.Split(x[:3], torch.zeros(3)),
        2,
    )
    fitted = data.preprocessed(ds, PLAIN)
    assert fitted.train.x.shape == (10, 3, 16, 16)
    assert torch.allclose(fitted.test.x[[1]], PLAIN.tensor_transform(x[[1]]))
    with pytest.raises(ValueError, match="already mapped"):
        data.preprocessed(fitted, PLAIN)


def _tiles(root, split, download, verify):
    """A user's reader: an ImageFolder per split under ``root/tiles``."""
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(root / "tiles" / split)
    return [p for p, _ in ds.samples], ds.targets, ds.classes


@pytest.fixture
def tiles():
    source = data.VisionSource("tiles", "tiles", False, _tiles, ("train", None, "test"))
    data.register_vision("tiles", source, "test: three colours")
    yield
    data.LOADERS._entries.pop("tiles")
    data.vision.SOURCES.pop("tiles")


def test_a_torchvision_layout_dataset_is_one_entry(tiles, tmp_path):
    from helpers import tiny_config
    from mr2.engine import validate
    from vision_fixtures import image

    names = ["blue", "green", "red"]
    for split, n in (("train", 8), ("test", 4)):
        for c, name in enumerate(names):
            for i in range(n):
                image(tmp_path / "tiles" / split / name / f"{i}.jpg", c, 10 * c + i)
    ds = data.load("tiles", data_dir=str(tmp_path), val_fraction=0.25, seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (18, 6, 12)  # validation carved
    assert ds.class_names == names and isinstance(ds.train.x, LazyImages)
    images = ds.test.x.with_transform(PLAIN.pil_transform())[np.arange(len(ds.test))]
    assert _colour_label(images) == ds.test.y.tolist()  # each row is its labelled file
    cfg = tiny_config()
    cfg.data.name, cfg.data.data_dir, cfg.data.options = "tiles", str(tmp_path), {"threads": 2}
    assert "tiles" in data.available() and not validate.problems(cfg)  # its options known
    with pytest.raises(FileNotFoundError, match=r"tiles: no tiles/ folder"):
        data.load("tiles", data_dir=str(tmp_path / "elsewhere"))
