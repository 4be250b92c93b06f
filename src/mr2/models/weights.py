"""Starting weights for any model, for any class count: a library's named weights or a local
file (a state_dict or a checkpoint holding one; ``.pt`` / ``.pth`` / ``.bin`` read with
``torch.load(weights_only=True)``, ``.safetensors`` with safetensors: no code is unpickled).

Every tensor whose name and shape match is loaded; the classifier is replaced (left at its
fresh initialisation) when its shape differs, i.e. when the class count does; a stem
convolution of three input channels is summed to one for grey images (timm's rule); a file
that matches fewer than half of the model's tensors is refused. ``model.options``:

- ``weights = "FILE"`` for every model (mr2's own, registered ones, ``timm:``,
  ``torchvision:``); timm's ``checkpoint_path = "FILE"`` and ``pretrained_cfg_overlay =
  {file = "FILE"}`` mean the same;
- ``weights = "IMAGENET1K_V1"`` (any name of the model's torchvision weights enum, or
  ``"DEFAULT"``) for ``torchvision:``; ``pretrained = true`` for ``timm:`` (the model name
  may carry the tag: ``timm:resnet18.a1_in1k``).

Named weights come from ``mr2.models.named_weights`` (the local cache first; offline, an
error at once that says how to pass a file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mr2.models import external, named_weights
from mr2.records import storage
from mr2.records.result import WeightsInfo

FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
MIN_MATCHED = 0.5  # a file matching fewer of the model's tensors is not weights of it


@dataclass(frozen=True)
class WeightsSpec:
    """What ``model.options`` ask for: ``kind`` "random", "library" (``name``: the
    library's weights) or "file" (``name``: its path)."""

    kind: str = "random"
    name: str = ""

    def info(self) -> WeightsInfo:
        """The run's record of it (a file with its SHA-256)."""
        if self.kind == "file":
            return WeightsInfo(
                "file", str(Path(self.name).resolve()), storage.file_sha256(self.name)
            )
        return WeightsInfo(self.kind, self.name)


@dataclass
class LoadReport:
    """What a load did, by state_dict name."""

    source: str
    loaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # the classifier, another class count
    adapted: list[str] = field(default_factory=list)  # 3-channel stem summed to 1 channel
    left_random: list[str] = field(default_factory=list)  # absent, or of another shape

    def text(self) -> str:
        def names(xs: list[str]) -> str:
            return ", ".join(xs[:6]) + (f" (+{len(xs) - 6} more)" if len(xs) > 6 else "")

        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.replaced:
            parts.append(f"replaced the classifier ({names(self.replaced)})")
        if self.adapted:
            parts.append(f"summed to one input channel: {names(self.adapted)}")
        parts.append(f"left random: {names(self.left_random) or 'none'}")
        return f"weights from {self.source}: " + "; ".join(parts)


def is_file_name(value: str) -> bool:
    """Whether a ``weights`` value names a file rather than a library's weights."""
    return value.lower().endswith(FILE_SUFFIXES) or os.sep in value or "/" in value


def split_options(name: str, options: Mapping[str, Any]) -> tuple[WeightsSpec, dict[str, Any]]:
    """The weights ``options`` ask for model ``name``, and the other options (those go to
    the model's constructor)."""
    rest = dict(options)
    prefix = (external.split(name) or ("", ""))[0]
    weights = rest.pop("weights", None)
    files: list[str] = []
    if prefix == "timm":
        if rest.get("checkpoint_path"):
            files.append(str(rest["checkpoint_path"]))
        rest.pop("checkpoint_path", None)
        overlay = rest.pop("pretrained_cfg_overlay", None) or {}
        if isinstance(overlay, Mapping) and overlay.get("file"):
            files.append(str(overlay["file"]))
        pretrained = bool(rest.pop("pretrained", False))
    else:
        pretrained = False
    if weights not in (None, ""):
        if not isinstance(weights, str):
            raise ValueError(f"model.options.weights must be a string, got {weights!r}")
        if is_file_name(weights) or Path(weights).is_file():
            files.append(weights)
        elif prefix == "torchvision":
            return _only(WeightsSpec("library", weights), files, pretrained), rest
        else:
            raise ValueError(
                f"model.options.weights = {weights!r} is not a file name (.pt, .pth, "
                f".safetensors) and {name!r} has no named weights"
                + ("; for timm's own set pretrained = true" if prefix == "timm" else "")
            )
    if pretrained:
        return _only(WeightsSpec("library", "pretrained"), files, False), rest
    if len(files) > 1:
        raise ValueError(f"model.options name more than one weights file: {files}")
    return (WeightsSpec("file", files[0]) if files else WeightsSpec()), rest


def _only(spec: WeightsSpec, files: list[str], pretrained: bool) -> WeightsSpec:
    if files or pretrained:
        raise ValueError(
            "model.options ask for named weights and a file (or timm's pretrained) at once; "
            "give one"
        )
    return spec


def info(name: str, options: Mapping[str, Any], *, backbone: bool = False) -> WeightsInfo:
    """Where a model of ``name`` built with ``options`` starts (a run's record; a file with
    its SHA-256). ``backbone``: a pre-trained backbone's ``weights`` option (a file, or a
    name its library knows)."""
    if backbone:
        value = str(options.get("weights") or "")
        is_file = bool(value) and Path(value).is_file()
        spec = WeightsSpec("file" if is_file else "library" if value else "random", value)
        return spec.info()
    return split_options(name, options)[0].info()


def problems(name: str, options: Mapping[str, Any]) -> list[str]:
    """What is wrong with the weights ``options`` ask for, without loading anything: a
    missing file, an unknown torchvision weights name."""
    try:
        spec, _ = split_options(name, options)
    except ValueError as err:
        return [str(err)]
    if spec.kind == "file" and not Path(spec.name).is_file():
        return [f"weights file {spec.name!r} does not exist"]
    if spec.kind == "library" and name.startswith("torchvision:"):
        try:
            named_weights.torchvision_weights(name, spec.name)
        except (ValueError, ImportError) as err:
            return [str(err)]
    return []


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file: a state_dict, or a checkpoint holding one under
    ``state_dict`` / ``model`` / ``model_state_dict`` / ``module`` (a DDP ``module.``
    prefix is dropped). Nothing is unpickled beyond tensors and containers."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file {p} does not exist")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors and torch.load raise many types
        raise ValueError(
            f"weights file {p} cannot be read as tensors ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); save model.state_dict() with "
            "torch.save, or as .safetensors"
        ) from err
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"weights file {p} holds a {type(obj).__name__}, not a state_dict")
    state = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _aligned(state: dict[str, Tensor], target: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with the key prefix ("model." of a wrapper) that matches most of
    ``target``'s names."""
    best, hits = state, sum(k in target for k in state)
    for add in ("model.",):
        for cand in (
            {add + k: v for k, v in state.items()},
            {k[len(add) :]: v for k, v in state.items() if k.startswith(add)},
        ):
            n = sum(k in target for k in cand)
            if n > hits:
                best, hits = cand, n
    return best


def _head_names(model: nn.Module) -> set[str]:
    """The state_dict names of the model's classifier (its ``head``, timm's
    ``get_classifier()``, or its last Linear)."""
    getter = getattr(model, "get_classifier", None)
    head = getter() if callable(getter) else getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    if head is None:
        return set()
    ids = {id(t) for t in head.state_dict(keep_vars=True).values()}
    return {n for n, t in model.state_dict(keep_vars=True).items() if id(t) in ids}


def load_matching(model: nn.Module, state: Mapping[str, Tensor], source: str) -> LoadReport:
    """Copy into ``model`` every tensor of ``state`` whose name and shape match; see the
    module docstring. Raises ``ValueError`` (the model untouched) when fewer than
    ``MIN_MATCHED`` of the model's tensors match."""
    target = model.state_dict()
    state = _aligned(dict(state), target)
    head = _head_names(model)
    report, chosen = LoadReport(source), {}
    for name, t in target.items():
        s = state.get(name)
        if s is not None and s.shape == t.shape:
            report.loaded.append(name)
            chosen[name] = s
        elif s is not None and _grey_stem(s, t):
            report.adapted.append(name)
            chosen[name] = s.sum(dim=1, keepdim=True)
        elif s is not None and name in head:
            report.replaced.append(name)
        elif not name.endswith("num_batches_tracked"):
            report.left_random.append(name)
    counted = [n for n in target if not n.endswith("num_batches_tracked")]
    matched = [n for n in chosen if not n.endswith("num_batches_tracked")]
    if len(matched) < MIN_MATCHED * len(counted):
        example = ", ".join(list(state)[:3]) or "none"
        raise ValueError(
            f"{source} matches only {len(matched)} of the model's {len(counted)} tensors by "
            f"name and shape (the file's first names: {example}; the model's: "
            f"{', '.join(counted[:3])}): these are not weights of this architecture"
        )
    model.load_state_dict(chosen, strict=False)
    return report


def _grey_stem(s: Tensor, t: Tensor) -> bool:
    return (
        s.dim() == 4
        and t.dim() == 4
        and s.shape[1] == 3
        and t.shape[1] == 1
        and (s.shape[0] == t.shape[0] and s.shape[2:] == t.shape[2:])
    )


def apply(model: nn.Module, name: str, spec: WeightsSpec) -> LoadReport | None:
    """Load what ``spec`` asks for into ``model`` (model ``name`` as built); None for
    random weights."""
    if spec.kind == "random":
        return None
    if spec.kind == "file":
        return load_matching(model, read_state_dict(spec.name), f"file {spec.name}")
    return load_matching(model, named_weights.state_dict(name, spec.name), f"{name} {spec.name}")
