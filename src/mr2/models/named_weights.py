"""A library's named weights as a state_dict: torchvision's weights enums
(``weights = "IMAGENET1K_V1"``) and timm's pretrained weights (``pretrained = true``), read
from the local caches (torch's hub folder, Hugging Face's cache) or downloaded. When they
are not cached and their host cannot be reached within ``PROBE_TIMEOUT_S`` (or
``HF_HUB_OFFLINE=1`` / ``MR2_OFFLINE=1`` is set), an ``OSError`` at once says how to pass a
local file, instead of a hub's retries."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor

from mr2.models import external

PROBE_TIMEOUT_S = 3.0
HOW_TO_FILE = (
    'pass a local file instead: model.options.weights = "/path/to/weights.pth" (a '
    "state_dict or a checkpoint holding one, .pt / .pth / .safetensors)"
)


def torchvision_weights(name: str, weights: str) -> Any:
    import torchvision

    model = name.partition(":")[2]
    enum = torchvision.models.get_model_weights(model)
    key = weights.rpartition(".")[2]
    if key not in enum.__members__:
        raise ValueError(
            f"{name} has no weights {weights!r}; available: {sorted(enum.__members__)}"
        )
    return enum[key]


def _reachable(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("MR2_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def _offline(what: str, where: str, url: str) -> OSError:
    return OSError(
        f"{what} are not in the local cache ({where}) and {urlparse(url).hostname} cannot be "
        f"reached (offline?): {HOW_TO_FILE}"
    )


def state_dict(name: str, weights: str) -> dict[str, Tensor]:
    """The state_dict of a library's named weights (``name``: "torchvision:<model>" or
    "timm:<model>"), from the cache or downloaded; fails at once when neither works."""
    prefix, model = external.split(name) or ("", "")
    if prefix == "torchvision":
        w = torchvision_weights(name, weights)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(w.url).path).name
        if not cached.is_file() and not _reachable(w.url):
            raise _offline(f"{name} weights {weights}", str(cached.parent), w.url)
        return dict(w.get_state_dict(progress=False))
    import timm

    cfg = timm.models.get_pretrained_cfg(model)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    url = "https://huggingface.co" if hub_id else (getattr(cfg, "url", "") or "")
    if not url:
        raise ValueError(f"timm has no pretrained weights for {model!r}: {HOW_TO_FILE}")
    if not _timm_cached(cfg) and not _reachable(url):
        raise _offline(f"timm's weights for {model}", "Hugging Face's and torch's caches", url)
    return dict(timm.create_model(model, pretrained=True).state_dict())


def _timm_cached(cfg: Any) -> bool:
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # timm without the hub client: only torch's cache can hold them
            return False
        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(hub_id, filename), str):
                return True
    url = getattr(cfg, "url", "") or ""
    return (
        bool(url)
        and (Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name).is_file()
    )
