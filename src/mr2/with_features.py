"""``with_features(model)``: any classifier, returning ``(logits, features)`` for MR².

The features are the input of the model's final linear classifier, with gradients. How
they are obtained, by kind of model:

- mr2's own models and backbones already return ``(logits, features)``: returned as is;
- timm models: ``forward_head(forward_features(x), pre_logits=True)`` and the classifier
  (``get_classifier()``) applied to it, which is exactly what timm's ``forward`` computes;
- any other module (torchvision's ResNet / ResNeXt / Wide ResNet ``fc``, ConvNeXt /
  EfficientNet / MobileNet / VGG ``classifier[-1]``, ViT ``heads.head``, Swin ``head``, ...):
  the model's own ``forward`` runs unchanged and a forward hook on the classifier records its
  input, so the logits are bit-identical to the unwrapped model's.

The wrapper's ``state_dict`` has the unwrapped model's keys (no ``model.`` prefix), so
checkpoints load either way.
"""

from __future__ import annotations

from typing import Any, cast

from torch import Tensor, nn

KNOWN_HEADS = ("fc", "classifier", "heads.head", "head", "head.fc", "classif")


def _get(model: nn.Module, path: str) -> nn.Module | None:
    node: Any = model
    for part in path.split("."):
        if isinstance(node, nn.Sequential) and part.lstrip("-").isdigit():
            node = node[int(part)]
        elif hasattr(node, part) and isinstance(getattr(node, part), nn.Module):
            node = getattr(node, part)
        else:
            return None
    return node


def _last_linear(module: nn.Module) -> tuple[str, nn.Linear] | None:
    """``module`` itself if it is a Linear, else its last Linear in registration order."""
    if isinstance(module, nn.Linear):
        return "", module
    found = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    return found[-1] if found else None


def find_head(model: nn.Module, head: str | None = None) -> tuple[str, nn.Linear]:
    """(dotted name, module) of the final linear classifier; ``ValueError`` naming the
    candidates when there is none or more than one."""
    if head is not None:
        found = _get(model, head)
        if not isinstance(found, nn.Linear):
            linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            raise ValueError(
                f"head={head!r} is not an nn.Linear of this {type(model).__name__} "
                f"(found {type(found).__name__ if found is not None else 'nothing'}); "
                f"its linear layers: {linears or 'none'}"
            )
        return head, found
    candidates: dict[int, tuple[str, nn.Linear]] = {}
    for path in KNOWN_HEADS:
        module = _get(model, path)
        last = _last_linear(module) if module is not None else None
        if last is not None:
            name = f"{path}.{last[0]}" if last[0] else path
            candidates.setdefault(id(last[1]), (name, last[1]))
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if len(candidates) > 1:
        names = sorted(n for n, _ in candidates.values())
        raise ValueError(
            f"{type(model).__name__} has several classifier candidates {names}; name the one "
            f"to use: with_features(model, head={names[0]!r})"
        )
    last = _last_linear(model)
    if last is None:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear layer to take features from; name the "
            "final linear classifier with head='...'"
        )
    return last


class FeatureModel(nn.Module):
    """``model`` whose forward returns ``(logits, features)``; see the module docstring."""

    def __init__(self, model: nn.Module, head: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.timm = head is None and all(
            hasattr(model, a) for a in ("forward_features", "forward_head", "get_classifier")
        )
        # the head is reached through the model (not registered twice: the state_dict keys
        # stay those of the unwrapped model)
        self.head_name = "get_classifier()" if self.timm else find_head(model, head)[0]
        self._features: Tensor | None = None
        if not self.timm:
            self.head.register_forward_hook(self._record)
        self._register_state_dict_hook(_strip_prefix)
        self._register_load_state_dict_pre_hook(_add_prefix)

    def _record(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        self._features = inputs[0]

    @property
    def head(self) -> nn.Linear:
        model: Any = self.model  # timm's API is not typed on nn.Module
        found = model.get_classifier() if self.timm else model.get_submodule(self.head_name)
        return cast(nn.Linear, found)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def forward(self, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        if self.timm:
            model: Any = self.model
            features = model.forward_head(model.forward_features(*args, **kwargs), pre_logits=True)
            return self.head(features), features
        self._features = None
        logits = self.model(*args, **kwargs)
        features, self._features = self._features, None
        if features is None:
            raise RuntimeError(
                f"the classifier {self.head_name!r} was not called by the model's forward; "
                "name the final linear layer with head='...'"
            )
        return logits, features.flatten(1)

    def extra_repr(self) -> str:
        return f"head={self.head_name!r}, feature_dim={self.feature_dim}"


def _strip_prefix(module, state_dict, prefix, local_metadata) -> None:
    inner = prefix + "model."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner) :]] = state_dict.pop(key)


def _add_prefix(state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
    inner = prefix + "model."
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix) :]] = state_dict.pop(key)


def with_features(model: nn.Module, head: str | None = None) -> nn.Module:
    """``model`` returning ``(logits, features)``: the features are the input of its final
    linear classifier (``head``: its dotted name, e.g. ``"classifier.1"``; found
    automatically for torchvision and timm models and any model with one last
    ``nn.Linear``). mr2's own models are returned unchanged.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8),
        ...                           torch.nn.ReLU(), torch.nn.Linear(8, 3))
        >>> logits, features = with_features(net)(torch.randn(2, 2, 2))
        >>> tuple(logits.shape), tuple(features.shape)
        ((2, 3), (2, 8))
    """
    if type(model).__module__.startswith(("mr2.models", "mr2.backbones")) and head is None:
        return model
    return FeatureModel(model, head)
