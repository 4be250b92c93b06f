"""``run_wise``: a finished run's zero-shot (alpha 0), fine-tuned (alpha 1) and interpolated
models scored on validation and test. The zero-shot model is the run's model at the start
of training (rebuilt from its config: pre-trained weights and zero-shot head); alpha is
chosen on validation. Each alpha's validation and test logits are kept (``train.keep_logits``)
in ``RUN_DIR/wise/alpha_A/logits.npz`` (``mr2.records.logits.load_logits`` of that folder), so
offsets can be fit at any alpha after the fact."""

from __future__ import annotations

import warnings
from pathlib import Path

from mr2.backbones.wiseft import interpolate
from mr2.engine import config, kept_logits
from mr2.engine.context import Context, setup
from mr2.engine.run import is_backbone, load_run_data
from mr2.engine.wise.scores import rank_rows, scores
from mr2.models import weights
from mr2.records import storage
from mr2.records.logits import owner_of_result, save_logits
from mr2.records.result import read_result
from mr2.records.wise import WiseResult, WiseRow


def pre_trained(cfg: config.RunConfig) -> bool:
    """Whether the run started from pre-trained weights: a backbone, or a model given
    weights (a library's named weights or a file)."""
    if is_backbone(cfg):
        return True
    return weights.split_options(cfg.model.name, cfg.model.options)[0].kind != "random"


def run_wise(run_dir: str | Path, alphas: list[float], *, ctx: Context | None = None) -> WiseResult:
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
    finetuned = storage.load_torch(run_dir / "final.pt")["model"]  # weights only: no second model
    model = model.to(ctx.device)
    run = read_result(run_dir)
    rows = []
    for alpha in sorted(set(float(a) for a in alphas)):
        model.load_state_dict(interpolate(zero_shot, finetuned, alpha))
        rows.append(_row(alpha, model, dataset, cfg, ctx))
        if cfg.train.keep_logits:
            kept = kept_logits.run_logits(model, dataset, cfg, ctx)
            owner = owner_of_result(run, f"wise alpha {alpha:g}")
            save_logits(logits_dir(run_dir, alpha), kept, owner)
    model.load_state_dict(finetuned)
    ranking = rank_rows(rows, model, dataset, cfg, ctx)
    scored = [r for r in rows if r.val is not None]
    best = max(scored, key=lambda r: r.val.summary["mean_class"] if r.val else 0.0, default=None)
    out = WiseResult(
        run=str(run_dir),
        rows=rows,
        selected_alpha=best.alpha if best else None,
        select_metric="val mean_class",
        class_names=dataset.class_names,
        ranking=ranking,
    )
    storage.save_json(out.to_dict(), run_dir / "wise.json")
    return out


def logits_dir(run_dir: str | Path, alpha: float) -> Path:
    """Where the WiSE-FT model at ``alpha`` keeps its logits."""
    return Path(run_dir) / "wise" / f"alpha_{float(alpha):g}"


def _row(alpha: float, model, dataset, cfg: config.RunConfig, ctx: Context) -> WiseRow:
    n = dataset.num_classes
    test, val = scores(model, dataset.test, n, cfg, ctx), scores(model, dataset.val, n, cfg, ctx)
    return WiseRow(alpha, test, val)
