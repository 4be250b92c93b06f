"""Feature-extraction throughput of a ViT-B/16-sized backbone and linear-probe time per epoch
from the memory-mapped feature cache.

1. Extraction: a randomly initialised CLIP ViT-B/16 image tower (86 M parameters, the
   paper's backbone; no download) over ``--images`` JPEG files (``--size`` px, written to a
   temporary folder), through mr2's real path: lazily decoded files, the backbone's own
   preprocessing, ``cached_features`` writing the cache. Reported: images/s end to end,
   and the model's forward alone on pre-decoded batches.
2. Probing: ``--probe-n`` cached features of width 512 (what ViT-B/16 gives) for K = 1000
   classes, stored with the cache's writer and read back memory-mapped; one epoch of the
   engine's training step (seeded permutation, gather, linear head, loss, backward, AdamW)
   with CE and with MR² (the CLIP settings of configs/clip_vitb16_*). Reported: seconds per
   epoch and the projection to ImageNet's 1.28 M training images.

    python benchmarks/backbone_speed.py [--device cuda] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import describe, save
from mr2 import backbones, losses
from mr2.backbones.cache import cached_features
from mr2.data import Split, preprocessed
from mr2.data.base import Dataset
from mr2.data.lazy import LazyImages
from mr2.models.linear import LinearProbe

IMAGENET_TRAIN = 1_281_167


def write_images(folder: Path, n: int, size: int) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.jpg"
        smooth = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(smooth).resize((size, size), Image.BICUBIC).save(path, quality=90)
        paths.append(str(path))
    return paths


def bench_extraction(args, device: torch.device) -> dict:
    torch.manual_seed(0)
    net = backbones.create("clip", 1000, arch="ViT-B-16", zero_shot=False).to(device).eval()
    params = sum(p.numel() for p in net.encoder.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.images, args.size)
        labels = torch.zeros(len(paths), dtype=torch.long)
        split = Split(LazyImages(paths), labels)
        ds = preprocessed(
            Dataset("bench", split, split.subset([]), split.subset([]), 1000), net.preprocess
        )
        x = ds.train.x[np.arange(args.batch)]  # warm-up, and a decoded batch for forward-only
        with torch.no_grad():
            net.features(x.to(device))
        start = time.perf_counter()
        _, info = cached_features(
            net,
            ds.train,
            "train",
            cache_dir=Path(tmp) / "cache",
            batch_size=args.batch,
            device=device,
        )
        total = time.perf_counter() - start
        assert not info["reused"]
        start = time.perf_counter()
        _, again = cached_features(net, ds.train, "train", cache_dir=Path(tmp) / "cache")
        reuse = time.perf_counter() - start
        assert again["reused"]
        reps = max(1, args.images // args.batch)
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(reps):
                net.features(x.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()
            forward = time.perf_counter() - start
    return {
        "params_million": round(params / 1e6, 1),
        "images": args.images,
        "image_px": args.size,
        "batch": args.batch,
        "extract_images_per_s": round(args.images / total, 2),
        "forward_only_images_per_s": round(reps * args.batch / forward, 2),
        "reuse_s": round(reuse, 3),
        "imagenet_extract_hours": round(IMAGENET_TRAIN / (args.images / total) / 3600, 1),
    }


def bench_probe(args, device: torch.device) -> dict:
    n, dim, k = args.probe_n, 512, 1000
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(k, dim)).astype(np.float32)
    labels = rng.integers(0, k, n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.npy"
        feats = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
        for start in range(0, n, 65536):
            rows = slice(start, min(start + 65536, n))
            block = centers[labels[rows]] + rng.normal(size=(rows.stop - rows.start, dim))
            feats[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
        feats.flush()
        del feats
        x = torch.from_numpy(np.load(path, mmap_mode="c"))
        y = torch.from_numpy(labels)
        out = {"n": n, "dim": dim, "classes": k, "batch": args.probe_batch}
        mr2_options = {
            "norm_p": 5.0,
            "rep_temperature": 5120.0,
            "lambda_rep": 0.1 * dim / 10 / k,
            "rep_reduction": "class",
            "ema_decay": 0.999,  # validate stays on, as in the engine
        }
        for name, options in (("ce", {}), ("mr2", mr2_options)):
            torch.manual_seed(0)
            model = LinearProbe((dim,), k).to(device)
            loss_fn = losses.create(name, num_classes=k, **options).to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
            steps = n // args.probe_batch
            start = time.perf_counter()
            for i in range(steps):
                idx = order[i * args.probe_batch : (i + 1) * args.probe_batch]
                xb, yb = x[idx].to(device), y[idx].to(device)
                logits, f = model(xb)
                loss = loss_fn(logits, f, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            out[f"{name}_s_per_epoch"] = round(seconds, 2)
            out[f"{name}_imagenet_s_per_epoch"] = round(seconds * IMAGENET_TRAIN / n, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=320, help="side of the JPEG files")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--probe-n", type=int, default=100_000)
    ap.add_argument("--probe-batch", type=int, default=512)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    device = torch.device(args.device)
    result = {
        "meta": describe(str(device)),
        "extraction": bench_extraction(args, device),
        "probe": bench_probe(args, device),
    }
    e, p = result["extraction"], result["probe"]
    print(
        f"| extraction (ViT-B/16, {e['params_million']} M params, {e['images']} JPEGs "
        f"{e['image_px']} px) | {e['extract_images_per_s']} img/s end to end | "
        f"{e['forward_only_images_per_s']} img/s forward only | cache reuse {e['reuse_s']} s |"
    )
    print(
        f"| probe epoch ({p['n']} x {p['dim']} cached, K {p['classes']}, batch {p['batch']}) "
        f"| CE {p['ce_s_per_epoch']} s | MR² {p['mr2_s_per_epoch']} s | ImageNet-sized: "
        f"CE {p['ce_imagenet_s_per_epoch']} s, MR² {p['mr2_imagenet_s_per_epoch']} s |"
    )
    out = Path(args.out or Path(__file__).parent / "results" / f"backbone_speed_{device.type}.json")
    print(f"raw numbers: {save(result, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
