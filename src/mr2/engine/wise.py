"""WiSE-FT (Wortsman et al., 2022): interpolate the weights of the zero-shot model and the
fine-tuned one, ``theta(alpha) = (1 - alpha) theta_zs + alpha theta_ft``, and evaluate every
alpha in one go. The zero-shot model is the run's model at the start of training (rebuilt
from its config: pre-trained weights and zero-shot head); alpha is chosen on validation."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from mr2 import io
from mr2.backbones.wiseft import interpolate
from mr2.engine import config
from mr2.engine.context import Context, setup
from mr2.engine.run import evaluate_split, is_backbone, load_run_data
from mr2.metrics import disparity_summary
from mr2.metrics.hard import ClassEvidence, HardRanking, choose_ranking, group_levels
from mr2.models import external


def _scores(model, split, num_classes: int, cfg, ctx: Context) -> dict[str, Any] | None:
    if not len(split):
        return None
    res = evaluate_split(cfg, ctx, model, split, num_classes, halves=True)
    return {
        "overall": res.overall,
        "per_class": res.accuracy,
        "support": res.support,
        "halves": res.halves,
    }


def _evidence(scores: dict[str, Any]) -> ClassEvidence:
    return ClassEvidence.of(scores["per_class"], halves=scores["halves"])


def _summarise(scores: dict[str, Any] | None, ranking: HardRanking) -> dict[str, Any] | None:
    """Disparity summary with easy / medium / hard from ``ranking`` (the fine-tuned model's
    validation accuracies, or its cross-fitted test halves), the same classes for every
    alpha and never the accuracies scored."""
    if scores is None:
        return None
    summary = disparity_summary(scores["per_class"], class_counts=scores["support"]).as_dict()
    summary.update(group_levels(ranking, _evidence(scores), 0))
    halves = scores["halves"]
    return {
        "overall": scores["overall"],
        "per_class": scores["per_class"].tolist(),
        "halves": None if halves is None else halves.tolist(),
        "summary": summary,
        "ranking": ranking.label,
    }


def _rankings(end: dict[str, Any]) -> dict[str, HardRanking]:
    """Validation rows are ranked on the fine-tuned model's validation accuracy (selection
    happens there); test rows on it too, or on its cross-fitted test halves without one."""
    val = end["val"]["per_class"] if end["val"] else None
    test = ClassEvidence.of(end["test"]["per_class"], val, end["test"]["halves"])
    ranking = choose_ranking({0: test})
    if end["val"] is None:
        return {"test": ranking}
    val_rank = choose_ranking({0: ClassEvidence.of(end["val"]["per_class"], val)})
    return {"test": ranking, "val": val_rank}


def _summarise_rows(rows: list[dict[str, Any]], finetuned, dataset, cfg, ctx: Context) -> None:
    """Every row's summary, ranked on the fine-tuned model (alpha 1, evaluated anew if
    not among the alphas)."""
    end = next((r for r in rows if r["alpha"] == 1.0), None)
    if end is None:
        end = {
            s: _scores(finetuned, getattr(dataset, s), dataset.num_classes, cfg, ctx)
            for s in ("val", "test")
        }
    rankings = _rankings(end)
    for r in rows:
        for split, ranking in rankings.items():
            r[split] = _summarise(r[split], ranking)


def pre_trained(cfg: config.RunConfig) -> bool:
    """Whether the run started from pre-trained weights: a backbone, or a library's model
    ("timm:..." / "torchvision:...") given weights."""
    if is_backbone(cfg):
        return True
    return bool(external.split(cfg.model.name)) and any(
        cfg.model.options.get(k) for k in external.WEIGHT_OPTIONS
    )


def run_wise(
    run_dir: str | Path, alphas: list[float], *, ctx: Context | None = None
) -> dict[str, Any]:
    """Evaluate the zero-shot (alpha 0), fine-tuned (alpha 1) and interpolated models of a
    finished run on validation and test; write RUN_DIR/wise.json. The selected alpha is the
    one with the best validation mean-class accuracy (test is reported, never used)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file() or not (run_dir / "final.pt").is_file():
        raise FileNotFoundError(
            f"{run_dir} holds no config.toml and final.pt (a finished run dir?)"
        )
    if not alphas:
        raise ValueError("give at least one alpha")
    cfg = config.load(run_dir / "config.toml")
    if not pre_trained(cfg):
        warnings.warn(
            f"{run_dir} trained {cfg.model.name!r} from scratch: WiSE-FT interpolates "
            "between pre-trained and fine-tuned weights, and here alpha = 0 is the random "
            "initialisation, so the curve says nothing about robustness",
            stacklevel=2,
        )
    ctx = ctx or setup(cfg)  # the run's device and precision
    dataset, model = load_run_data(cfg, ctx)
    zero_shot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    finetuned = io.load_torch(run_dir / "final.pt")["model"]  # weights only: no second model
    model = model.to(ctx.device)
    rows: list[dict[str, Any]] = []
    for alpha in sorted(set(float(a) for a in alphas)):
        model.load_state_dict(interpolate(zero_shot, finetuned, alpha))
        rows.append(
            {
                "alpha": alpha,
                "val": _scores(model, dataset.val, dataset.num_classes, cfg, ctx),
                "test": _scores(model, dataset.test, dataset.num_classes, cfg, ctx),
            }
        )
    model.load_state_dict(finetuned)
    _summarise_rows(rows, model, dataset, cfg, ctx)
    scored = [r for r in rows if r["val"] is not None]
    best = max(scored, key=lambda r: r["val"]["summary"]["mean_class"]) if scored else None
    out = {
        "run": str(run_dir),
        "rows": rows,
        "selected_alpha": best["alpha"] if best else None,
        "select_metric": "val mean_class",
        "class_names": dataset.class_names,
    }
    io.save_json(out, run_dir / "wise.json")
    return out


def wise_table(result: dict[str, Any]) -> str:
    """Markdown table: one row per alpha, validation and test columns."""
    lines = [
        "| alpha | val mean-class | test overall | test mean-class | test worst | test hard |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        v = f"{100 * r['val']['summary']['mean_class']:.2f}" if r["val"] else "-"
        t = r["test"]["summary"]
        mark = " (selected)" if r["alpha"] == result["selected_alpha"] else ""
        lines.append(
            f"| {r['alpha']:g}{mark} | {v} | {100 * r['test']['overall']:.2f} | "
            f"{100 * t['mean_class']:.2f} | {100 * t['worst_class']:.2f} | {100 * t['hard']:.2f} |"
        )
    return "\n".join(lines)
