"""The fine-grained transfer datasets and ImageNet as lazily decoded image files, read by
torchvision's dataset classes (extra ``vision``) with their official splits.

Validation: the official one where the dataset has it (Flowers102, FGVC-Aircraft), else
carved, stratified and seeded, from the training split (Pets ``trainval``, Food-101, Stanford
Cars, ImageNet ``train``); the test split is the official test (ImageNet: ``val``). A CoOp
split file (``split_zhou_*.json``: ``{"train"|"val"|"test": [[path, label, class], ...]}``)
replaces all three splits, its labels and its class names when ``split_file`` is given.
Images are found under ``data_dir``, ``$MR2_DATA`` or ``~/.cache/mr2/<name>``, in the folder
torchvision expects (e.g. ``oxford-iiit-pet/``); torchvision downloads them when allowed
and the dataset still has a public source (not Stanford Cars, not ImageNet).

Each dataset is one ``VisionSource`` (its folder, where CoOp's image paths start, whether
it downloads, its official split names and a ``read`` function returning one split's image
paths, labels and class names), registered with ``register_vision``: a new
torchvision-layout dataset is one such entry in a file of its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from mr2.data.base import Dataset, Split, make_dataset
from mr2.data.files import search_dirs
from mr2.data.lazy import LazyImages
from mr2.data.registry import LOADERS

Reader = Callable[[Path, str, bool, bool], tuple[list[str], list[int], list[str]]]


@dataclass(frozen=True)
class VisionSource:
    """One torchvision-layout dataset: ``read(root, split, download, verify)`` -> (image
    paths, labels, class names) of an official split; ``splits``: the official (train,
    validation or None: carved from train, test) split names."""

    folder: str  # torchvision's folder under root
    image_root: str  # where CoOp's relative image paths start, under root
    downloads: bool
    read: Reader
    splits: tuple[str, str | None, str] = ("train", None, "test")


SOURCES: dict[str, VisionSource] = {}


def register_vision(name: str, source: VisionSource, description: str = "") -> None:
    """Add a torchvision-layout dataset: ``mr2.data.load(name, ...)`` and ``data.name``."""
    LOADERS.register(
        name, partial(load_vision, name), description or f"{name} (torchvision layout)"
    )
    SOURCES[name] = source


def _root(name: str, data_dir: str, path: str, allow_download: bool) -> tuple[Path, bool]:
    """(root folder holding the dataset's folder, whether torchvision should download)."""
    src = SOURCES[name]
    candidates = [Path(path).parent] if path else search_dirs(name, data_dir, [])
    if path and Path(path).name != src.folder:
        raise ValueError(f"data.path for {name} must be a folder named {src.folder}, got {path}")
    for d in candidates:
        if (d / src.folder).is_dir():
            return d, False
    if allow_download and src.downloads and not path:
        return candidates[-1], True
    raise FileNotFoundError(
        f"{name}: no {src.folder}/ folder under any of {[str(d) for d in candidates]}"
        + ("" if src.downloads else f" ({name} cannot be downloaded automatically)")
        + "; pass --set data.data_dir=DIR or set MR2_DATA"
    )


def _torchvision(name: str, root: Path, split: str, download: bool, verify: bool):
    """(paths, labels, class names) of one official split, read by the source's reader."""
    try:
        return SOURCES[name].read(root, split, download, verify)
    except RuntimeError as err:  # torchvision's "Dataset not found or corrupted"
        hint = " (MD5 check of its .mat files; data.options.verify = false skips it)"
        raise FileNotFoundError(
            f"{name}: torchvision could not read {root / SOURCES[name].folder}: {err}"
            + (hint if name == "flowers102" else "")
        ) from err


def _pets(root: Path, split: str, download: bool, verify: bool) -> Any:
    from torchvision import datasets as tv

    ds = tv.OxfordIIITPet(root, split=split, download=download)
    return [str(p) for p in ds._images], ds._labels, ds.classes


def _flowers(root: Path, split: str, download: bool, verify: bool) -> Any:
    from torchvision import datasets as tv

    cls = tv.Flowers102 if verify else _make_unverified()
    ds = cls(root, split=split, download=download)
    return [str(p) for p in ds._image_files], ds._labels, list(tv.Flowers102.classes)


def _food(root: Path, split: str, download: bool, verify: bool) -> Any:
    from torchvision import datasets as tv

    ds = tv.Food101(root, split=split, download=download)
    return [str(p) for p in ds._image_files], ds._labels, [c.replace("_", " ") for c in ds.classes]


def _aircraft(root: Path, split: str, download: bool, verify: bool) -> Any:
    from torchvision import datasets as tv

    ds = tv.FGVCAircraft(root, split=split, download=download)
    return list(ds._image_files), ds._labels, ds.classes


def _cars(root: Path, split: str, download: bool, verify: bool) -> Any:
    from torchvision import datasets as tv

    ds = tv.StanfordCars(root, split=split)
    return [p for p, _ in ds._samples], [y for _, y in ds._samples], ds.classes


def _imagenet(root: Path, split: str, download: bool, verify: bool) -> Any:
    from torchvision import datasets as tv

    ds = tv.ImageFolder(root / "imagenet" / split)
    return [p for p, _ in ds.samples], ds.targets, _imagenet_names(ds.classes)


def _imagenet_names(folders: list[str]) -> list[str]:
    """CLIP's class names for the 1000 WordNet-id folders, else the folder names."""
    if len(folders) == 1000 and all(f[:1] == "n" and f[1:].isdigit() for f in folders):
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        return list(IMAGENET_CLASSNAMES)
    return list(folders)


def _unverified_check(self) -> bool:
    return self._images_folder.is_dir() and all(
        (self._base_folder / self._file_dict[k][0]).is_file() for k in ("label", "setid")
    )


def _make_unverified():
    """Flowers102 that checks the annotation files exist instead of their MD5 sums."""
    from torchvision.datasets import Flowers102

    return type("_UnverifiedFlowers102", (Flowers102,), {"_check_integrity": _unverified_check})


def _split(paths, labels, threads: int = 8) -> Split:
    return Split(
        LazyImages(paths, threads=threads), torch.as_tensor(list(labels), dtype=torch.long)
    )


def read_coop_split(
    path: str | Path, image_root: Path, threads: int = 8
) -> tuple[dict[str, Split], list[str]]:
    """Splits and class names from a CoOp split file; image paths relative to image_root."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"split file {p} does not exist")
    table = json.loads(p.read_text())
    missing = {"train", "val", "test"} - set(table)
    if missing:
        raise ValueError(f"split file {p} lacks {sorted(missing)}")
    names: dict[int, str] = {}
    splits = {}
    for key in ("train", "val", "test"):
        rows = table[key]
        for entry in rows:
            if len(entry) != 3:
                raise ValueError(
                    f"split file {p}: {key} entry {entry!r} is not [path, label, name]"
                )
            names.setdefault(int(entry[1]), str(entry[2]))
        paths = [str(image_root / r[0]) for r in rows]
        splits[key] = _split(paths, [int(r[1]) for r in rows], threads)
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"split file {p}: labels are not 0..K-1")
    return splits, [names[k].replace("_", " ") for k in range(len(names))]


def load_vision(
    name: str,
    *,
    data_dir: str = "",
    path: str = "",
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int = 0,
    allow_download: bool = True,
    split_file: str = "",
    verify: bool = True,
    threads: int = 8,
) -> Dataset:
    """``path``: the dataset's own folder (e.g. /data/oxford-iiit-pet), else searched;
    ``verify``: torchvision's MD5 checks of annotation files (Flowers102); ``threads``:
    decoding threads per batch."""
    root, download = _root(name, data_dir, path, allow_download)
    notes = [f"{name} under {root}"]
    if split_file:
        splits, classes = read_coop_split(split_file, root / SOURCES[name].image_root, threads)
        notes.append(f"CoOp split file {split_file}: its train / val / test")
    else:
        splits, classes = _official_splits(name, root, download, verify, threads)
    ds = make_dataset(
        name,
        splits["train"],
        splits["test"],
        len(classes),
        val_fraction=0.0 if "val" in splits else val_fraction,
        seed=seed,
        train_subset=train_subset,
        class_names=list(classes),
        notes=notes,
    )
    if "val" in splits:
        ds.val = splits["val"]
        if not split_file:
            notes.append(f"official {SOURCES[name].splits[1]} split as validation")
    return ds


def _official_splits(
    name: str, root: Path, download: bool, verify: bool, threads: int
) -> tuple[dict[str, Split], list[str]]:
    """The official splits ("train", "test" and "val" where the dataset has one) and the
    class names, read by the source's reader."""
    splits: dict[str, Split] = {}
    classes: list[str] = []
    for key, split in zip(("train", "val", "test"), SOURCES[name].splits, strict=True):
        if split is not None:
            paths, labels, names = _torchvision(name, root, split, download, verify)
            splits[key] = _split(paths, labels, threads)
            classes = classes or list(names)
    return splits, classes


for _name, _source in {
    "pets": VisionSource(
        "oxford-iiit-pet", "oxford-iiit-pet/images", True, _pets, ("trainval", None, "test")
    ),
    "flowers102": VisionSource(
        "flowers-102", "flowers-102/jpg", True, _flowers, ("train", "val", "test")
    ),
    "food101": VisionSource("food-101", "food-101/images", True, _food),
    "aircraft": VisionSource(
        "fgvc-aircraft-2013b",
        "fgvc-aircraft-2013b/data/images",
        True,
        _aircraft,
        ("train", "val", "test"),
    ),
    "cars": VisionSource("stanford_cars", "stanford_cars", False, _cars),
    "imagenet": VisionSource("imagenet", "imagenet", False, _imagenet, ("train", None, "val")),
}.items():
    register_vision(_name, _source)
