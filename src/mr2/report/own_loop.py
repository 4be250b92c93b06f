"""Runs trained in your own loop, recorded in the ``result.json`` schema the engine writes
(``mr2.records.result.RunResult``; its JSON Schema is ``docs/result.schema.json``), so that
``mr2 report`` compares them (also beside engine runs). A recorded run has
``source = "record_run"``, an empty history and ``dataset.split`` saying which split was
scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mr2 import _checks
from mr2.metrics import disparity_summary
from mr2.metrics.classwise import accuracy_from_confusion, confusion_counts
from mr2.metrics.hard import half_accuracies, labels_digest
from mr2.metrics.spread import class_spread, feature_sums
from mr2.records.logits import FILE as LOGITS_FILE
from mr2.records.logits import RunLogits, SplitLogits, owner_of_result, save_logits
from mr2.records.result import DatasetInfo, RunResult, SplitScores, ValSummary, read_result
from mr2.records.storage import save_json


def _as_numpy(x: Any) -> np.ndarray:
    """Tensors and array-likes as NumPy arrays, keeping the dtype (labels stay integers)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _labels(y: Any, name: str) -> torch.Tensor:
    return torch.from_numpy(_checks.integer_labels(y, name))


def _predictions(y_pred: Any, logits: Any) -> torch.Tensor:
    if (y_pred is None) == (logits is None):
        raise ValueError("give exactly one of y_pred (labels) or logits (N, K)")
    if logits is not None:
        z = torch.as_tensor(_as_numpy(logits))
        if z.dim() != 2:
            raise ValueError(f"logits must be (N, K), got shape {tuple(z.shape)}")
        bad = int((~torch.isfinite(z)).any(1).sum()) if z.is_floating_point() else 0
        if bad:
            raise ValueError(
                f"logits of {bad} sample(s) hold NaN or Inf: a prediction from them would be "
                "arbitrary; fix the model's outputs (or pass y_pred)"
            )
        return z.argmax(1)
    return _labels(y_pred, "y_pred")


MAX_INFERRED_CLASSES = 10_000


def inferred_classes(*labels: Any) -> int:
    """K = largest label + 1, when no class count is given; refused (before anything is
    allocated from it) when the labels do not show it: above ``MAX_INFERRED_CLASSES``, or
    with fewer than half of the classes 0 .. K-1 occurring. Give ``class_names`` (or logits)
    to set K yourself."""
    values = [torch.as_tensor(_as_numpy(x)).long().reshape(-1) for x in labels]
    top = max(int(v.max()) for v in values if v.numel())
    distinct = len(set().union(*(set(torch.unique(v).tolist()) for v in values)))
    if top + 1 > MAX_INFERRED_CLASSES or 2 * distinct < top + 1:
        raise ValueError(
            f"the largest label is {top} but only {distinct} of the {top + 1} classes 0 .. "
            f"{top} occur (an inferred class count must be at most {MAX_INFERRED_CLASSES:,} "
            "with at least half of its classes present): check the labels, or give "
            "class_names (one per class) to set the class count"
        )
    return top + 1


def split_scores(y_true: Any, y_pred: Any, num_classes: int) -> SplitScores:
    """overall, per-class accuracy (NaN for absent classes), support, confusion, summary,
    and the per-class accuracies on the cross-fitting halves (``mr2.metrics.hard``)."""
    y, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y.shape != p.shape or not len(y):
        raise ValueError(f"y_true {tuple(y.shape)} and predictions {tuple(p.shape)} must match")
    if int(y.max()) >= num_classes or int(p.max()) >= num_classes or int(y.min()) < 0:
        raise ValueError(f"labels and predictions must lie in [0, {num_classes})")
    confusion = confusion_counts(p, y, num_classes)
    support = confusion.sum(1)
    accuracy = accuracy_from_confusion(confusion)
    return SplitScores(
        overall=float(confusion.diagonal().sum()) / len(y),
        per_class=accuracy.tolist(),
        support=support.tolist(),
        confusion=confusion.tolist(),
        summary=disparity_summary(accuracy, class_counts=support).as_dict(),
        halves=half_accuracies(y.numpy(), (p == y).numpy(), num_classes).tolist(),
        labels_sha256=labels_digest(y.numpy()),
    )


def feature_diagnostics(features: Any, y_true: Any, num_classes: int) -> dict[str, list[float]]:
    """Per-class ||mu_k||^2 and spread E_k ||f - mu_k||^2 of (N, D) features (float64)."""
    f = torch.as_tensor(_as_numpy(features))
    if f.dim() != 2 or not f.dtype.is_floating_point or not bool(torch.isfinite(f).all()):
        raise ValueError(
            f"features must be a finite (N, D) float array, got shape {tuple(f.shape)}, "
            f"dtype {f.dtype}{'' if not f.dtype.is_floating_point else ' (NaN or Inf found?)'}"
        )
    y = _labels(y_true, "y_true")
    if len(f) != len(y):
        raise ValueError(
            f"features have {len(f)} rows but y_true has {len(y)} labels: give one feature "
            "row per sample, in the order of y_true"
        )
    stats = class_spread(feature_sums(f, y, num_classes))
    return {"test_norm_sq": stats["norm_sq"], "test_spread": stats["spread"]}


def record_run(
    out_dir: str | Path,
    *,
    method: str,
    seed: int,
    y_true: Any,
    y_pred: Any = None,
    logits: Any = None,
    class_names: list[str] | None = None,
    split: str = "test",
    val: tuple[Any, Any] | None = None,
    features: Any = None,
    config: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Write ``out_dir/result.json`` for a run of your own training loop and return it.

    Args:
        method: what the run stands for (runs of one method are its seeds).
        seed: the run's seed.
        y_true: (N,) true labels of the evaluated split (``split``: "test" or "val");
            ``y_pred`` (N,) predicted labels or ``logits`` (N, K).
        class_names: K names (default "0" .. "K-1"; K from the logits or the labels).
        val: optional ``(y_true, y_pred)`` or ``(y_true, logits)`` of the validation split.
            Logits are kept beside the result (``logits.npz``) for ``mr2 posthoc``.
        features: optional (N, D) features of the same samples: the spread diagnostics.
        config: optional dict of the run's settings (runs of one method agree but the seed).
        overwrite: replace a run of another method or seed recorded in ``out_dir``.

    Example:
        >>> import tempfile
        >>> result = record_run(tempfile.mkdtemp(), method="ce", seed=0, y_true=[0, 1, 1],
        ...                     y_pred=[0, 1, 0])
        >>> round(result.test.overall, 3)
        0.667
    """
    _check_run_arguments(out_dir, method, seed, split, overwrite)
    preds, y = _predictions(y_pred, logits), _labels(y_true, "y_true")
    names = _class_names(class_names, logits, y, preds)
    test = split_scores(y, preds, k := len(names))
    val_logits = _val_logits(val, k)
    if val_logits is not None:
        val = (val_logits.labels, val_logits.logits.argmax(1))
    result = _recorded(method, int(seed), dict(config or {}), names, split, test)
    result.val = _val_summary(val, k) if val is not None else None
    result.diagnostics = feature_diagnostics(features, y, k) if features is not None else {}
    scored = SplitLogits(_as_numpy(logits), y.numpy()) if logits is not None else None
    _keep_logits(Path(out_dir), RunLogits(val_logits, scored if split == "test" else None), result)
    save_json(result.to_dict(), Path(out_dir) / "result.json")
    return result


def _keep_logits(out_dir: Path, kept: RunLogits, result: RunResult) -> None:
    """logits.npz beside the result; a run recorded again without logits keeps none of the
    earlier recording's."""
    if kept.val is not None or kept.test is not None:
        save_logits(out_dir, kept, owner_of_result(result))
    else:
        (out_dir / LOGITS_FILE).unlink(missing_ok=True)


def _val_logits(val: tuple[Any, Any] | None, k: int) -> SplitLogits | None:
    """The validation logits when ``val`` gives them ((y_true, logits (N, K)))."""
    if val is None or np.ndim(_as_numpy(val[1])) != 2:
        return None
    z = _as_numpy(val[1])
    if z.shape[1] != k or not np.isfinite(z).all():
        raise ValueError(f"val logits must be finite and (N, {k}), got shape {z.shape}")
    return SplitLogits(z, _labels(val[0], "val y_true").numpy())


def _check_run_arguments(
    out_dir: str | Path, method: Any, seed: Any, split: str, overwrite: bool
) -> None:
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    if "\0" in str(out_dir):
        raise ValueError(f"out_dir {str(out_dir)!r} holds a NUL byte: not a usable folder name")
    if (Path(out_dir) / "run.json").exists():
        raise ValueError(
            f"{out_dir} holds a run of mr2's engine (run.json); record this run elsewhere"
        )
    if (problem := _checks.name_problem(method)) is not None:
        raise ValueError(problem)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if not overwrite and (Path(out_dir) / "result.json").is_file():
        _refuse_other_run(Path(out_dir), method, int(seed))


def _refuse_other_run(out_dir: Path, method: str, seed: int) -> None:
    """A run of another method or seed recorded in ``out_dir`` is not replaced silently."""
    try:
        held = read_result(out_dir)
        same = held.method == method and held.seed == seed
        what = f"the run of method {held.method!r} seed {held.seed}"
    except (OSError, ValueError):
        same, what = False, "a result.json that does not read as a run"
    if not same:
        raise ValueError(
            f"{out_dir} holds {what}: record method {method!r} seed {seed} in another folder, "
            "or pass overwrite=True to replace it"
        )


def _class_names(
    class_names: list[str] | None, logits: Any, y: torch.Tensor, preds: torch.Tensor
) -> list[str]:
    """The K class names: given (as many as the logits' columns), else "0" .. "K-1" with K
    from the logits or, failing those, from the labels (``inferred_classes``)."""
    cols = int(torch.as_tensor(_as_numpy(logits)).shape[1]) if logits is not None else None
    if class_names is not None:
        if cols is not None and len(class_names) != cols:
            raise ValueError(
                f"class_names has {len(class_names)} names but the logits have {cols} columns"
            )
        if class_names:
            return list(class_names)
    k = cols or inferred_classes(y, preds)
    return [str(i) for i in range(k)]


def _val_summary(val: tuple[Any, Any], k: int) -> ValSummary:
    v = split_scores(val[0], val[1], k)  # its summary serves validation too
    s = v.summary  # mean-class, worst class and hard third ignore class counts
    return ValSummary(v.per_class, s["mean_class"], s["worst_class"], s["hard"], v.overall)


def _recorded(
    method: str,
    seed: int,
    settings: dict[str, Any],
    names: list[str],
    split: str,
    scores: SplitScores,
) -> RunResult:
    """The run's record of the scored split: identity from ``settings`` (all but the
    seed)."""
    identity = {f"config.{key}": value for key, value in sorted(settings.items())}
    identity = {k2: v2 for k2, v2 in identity.items() if k2 != "config.seed"}
    dataset = DatasetInfo(
        name=str(settings.get("dataset", "external")),
        num_classes=len(names),
        class_names=names,
        sizes={split: int(sum(scores.support))},
        notes=["recorded with mr2.report.record_run"],
        split=split,
    )
    return RunResult(
        method=method,
        seed=seed,
        source="record_run",
        config=settings,
        identity={"source": "record_run", **identity},
        dataset=dataset,
        test=scores,
    )
