"""Tiny copies of each dataset's official on-disk layout (the files torchvision reads), with
class-coloured JPEG images, so the real loading code runs on files made by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def image(path: Path, label: int, seed: int, size: tuple[int, int] = (40, 30)) -> None:
    """A JPEG whose mean colour depends on the label (learnable), plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.array([(label * 67) % 256, (label * 131) % 256, (label * 29 + 90) % 256])
    pixels = np.clip(base + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)


def _counts(k: int, n: int):
    """(label, index) pairs: n images per class."""
    return [(c, i) for c in range(k) for i in range(n)]


def make_pets(root: Path, k: int = 3, n: int = 6) -> list[str]:
    names = [f"Breed_{chr(65 + c)}" for c in range(k)]
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    lines = {"trainval": [], "test": []}
    for c, i in _counts(k, n):
        stem = f"{names[c]}_{i + 1}"
        image(base / "images" / f"{stem}.jpg", c, c * 100 + i)
        lines["test" if i % 3 == 0 else "trainval"].append(f"{stem} {c + 1} 1 1")
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return [n.replace("_", " ") for n in names]


def make_flowers(root: Path, k: int = 3, n: int = 6) -> None:
    from scipy.io import savemat

    base = root / "flowers-102"
    labels, sets = [], {"trnid": [], "valid": [], "tstid": []}
    for j, (c, i) in enumerate(_counts(k, n)):
        image(base / "jpg" / f"image_{j + 1:05d}.jpg", c, j)
        labels.append(c + 1)
        sets[("trnid", "trnid", "valid", "tstid", "trnid", "tstid")[i % 6]].append(j + 1)
    savemat(base / "imagelabels.mat", {"labels": np.array(labels)})
    savemat(base / "setid.mat", {k: np.array(v) for k, v in sets.items()})


def make_food(root: Path, k: int = 3, n: int = 6) -> list[str]:
    names = [f"dish_{chr(97 + c)}" for c in range(k)]
    base = root / "food-101"
    meta = {"train": {}, "test": {}}
    for c, i in _counts(k, n):
        rel = f"{names[c]}/{1000 + i}"
        image(base / "images" / f"{rel}.jpg", c, c * 100 + i)
        meta["test" if i % 3 == 0 else "train"].setdefault(names[c], []).append(rel)
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for split, table in meta.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(table))
    return names


def make_aircraft(root: Path, k: int = 3, n: int = 6) -> list[str]:
    names = [f"7{c}7-{c}00" for c in range(k)]
    data = root / "fgvc-aircraft-2013b" / "data"
    rows = {"train": [], "val": [], "test": [], "trainval": []}
    for j, (c, i) in enumerate(_counts(k, n)):
        stem = f"{1000000 + j:07d}"
        image(data / "images" / f"{stem}.jpg", c, j)
        split = ("train", "train", "val", "test", "train", "test")[i % 6]
        rows[split].append(f"{stem} {names[c]}")
        if split != "test":
            rows["trainval"].append(f"{stem} {names[c]}")
    (data / "variants.txt").write_text("\n".join(names) + "\n")
    for split, lines in rows.items():
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    return names


def make_cars(root: Path, k: int = 3, n: int = 6) -> list[str]:
    from scipy.io import savemat

    names = [f"Maker Model {c} 20{10 + c}" for c in range(k)]
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    annos = {"train": [], "test": []}
    for j, (c, i) in enumerate(_counts(k, n)):
        split = "test" if i % 3 == 0 else "train"
        fname = f"{j + 1:05d}.jpg"
        image(base / f"cars_{split}" / fname, c, j)
        annos[split].append((fname, c + 1))
    dtype = [("fname", object), ("class", np.int64)]
    for split, rows in annos.items():
        table = np.array(rows, dtype=dtype)
        target = (
            base / "devkit" / "cars_train_annos.mat"
            if split == "train"
            else (base / "cars_test_annos_withlabels.mat")
        )
        savemat(target, {"annotations": table})
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(names, dtype=object)})
    return names


def make_imagenet(root: Path, k: int = 3, n: int = 6) -> list[str]:
    wnids = [f"n0{1440764 + c}" for c in range(k)]
    for c, i in _counts(k, n):
        split = "val" if i % 3 == 0 else "train"
        image(root / "imagenet" / split / wnids[c] / f"{wnids[c]}_{i}.JPEG", c, c * 100 + i)
    return wnids


def coop_split_file(path: Path, entries: dict[str, list[tuple[str, int, str]]]) -> Path:
    path.write_text(json.dumps({k: [list(e) for e in v] for k, v in entries.items()}))
    return path


MAKERS = {
    "pets": make_pets,
    "flowers102": make_flowers,
    "food101": make_food,
    "aircraft": make_aircraft,
    "cars": make_cars,
    "imagenet": make_imagenet,
}


TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
VISION_CFGS = {
    "vit": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "rn": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16},
}
MAE_KWARGS = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def tiny_clip_dir(folder: Path, kind: str = "vit") -> Path:
    """A folder in open_clip's local format (open_clip_config.json) for a tiny CLIP."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": {"embed_dim": 16, "vision_cfg": VISION_CFGS[kind], "text_cfg": TEXT_CFG}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    return folder


def tiny_backbone_options(name: str, tmp: Path) -> dict:
    """Model options of a tiny, randomly initialised backbone taking 32x32 images."""
    if name == "clip":
        return {"arch": f"local-dir:{tiny_clip_dir(tmp / 'clip')}", "prompts": "simple"}
    if name == "clip_rn":
        return {"arch": f"local-dir:{tiny_clip_dir(tmp / 'clip_rn', 'rn')}"}
    if name == "mae":
        return {"model_kwargs": dict(MAE_KWARGS)}
    return {"arch": "resnet18", "image_size": 32}
