"""What every pre-trained backbone shares: its preprocessing, resolved from the backbone's own
config, and a wrapper that returns ``(logits, features)`` like every mr2 model."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing: resize the shorter side to ``resize``, centre-crop ``size``,
    scale to [0, 1], normalise with ``mean`` / ``std`` (RGB)."""

    size: int
    resize: int
    interpolation: str  # "bicubic" or "bilinear"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation must be bicubic or bilinear, got {self.interpolation}")
        if not 0 < self.size <= self.resize:
            raise ValueError(f"need 0 < size <= resize, got size {self.size}, resize {self.resize}")

    @classmethod
    def from_crop_pct(cls, size: int, crop_pct: float, **kwargs) -> Preprocess:
        """timm's convention: resize to floor(size / crop_pct), then crop ``size``."""
        return cls(size, math.floor(size / crop_pct), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def pil_transform(self):
        """The torchvision transform for PIL images (the backbone's own eval pipeline)."""
        from torchvision import transforms as T

        mode = getattr(T.InterpolationMode, self.interpolation.upper())
        return T.Compose(
            [
                T.Lambda(_to_rgb),
                T.Resize(self.resize, interpolation=mode),
                T.CenterCrop(self.size),
                T.ToTensor(),
                T.Normalize(self.mean, self.std),
            ]
        )

    def tensor_transform(self, x: Tensor) -> Tensor:
        """The same pipeline on a batch of float images (N, C, H, W) in [0, 1] (grey images
        are repeated to 3 channels), for datasets held as tensors."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
        x = x.float().expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        scale = self.resize / min(h, w)
        new = (max(self.size, round(h * scale)), max(self.size, round(w * scale)))
        if new != (h, w):
            x = F.interpolate(x, size=new, mode=self.interpolation, antialias=True)
            x = x.clamp(0, 1)
        top, left = (new[0] - self.size) // 2, (new[1] - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size]
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std


def _to_rgb(image):
    return image.convert("RGB")


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """A pre-trained image encoder with a linear head: ``forward(x) -> (logits, features)``.

    ``features`` are what the encoder gives (L2-normalised when ``normalize``, as CLIP's
    zero-shot classifier and WiSE-FT use them); ``head`` is an ``nn.Linear`` that a zero-shot
    classifier may initialise. ``identity`` names the backbone and its weights; it keys the
    feature cache."""

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        num_classes: int,
        preprocess: Preprocess,
        identity: dict[str, Any],
        *,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)
        self.preprocess = preprocess
        self.normalize = normalize
        self.identity = dict(identity)
        self.prompts: list[str] | None = None  # a zero-shot head's prompts (CLIP)

    def features(self, x: Tensor) -> Tensor:
        f = self.encoder(x)
        return F.normalize(f, dim=-1) if self.normalize else f

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        return self.head(f), f

    def describe(self) -> dict[str, Any]:
        """Everything the features depend on: backbone identity, weights, preprocessing."""
        return {
            **self.identity,
            "normalize": self.normalize,
            "feature_dim": self.feature_dim,
            "preprocess": self.preprocess.to_dict(),
            "encoder_sha256": state_sha256(self.encoder),
        }


def state_sha256(module: nn.Module) -> str:
    """Checksum of a module's parameters and buffers (names, shapes, dtypes and bytes):
    any change of weights changes it."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
