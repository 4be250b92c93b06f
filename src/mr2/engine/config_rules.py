"""The ranges of the configuration's values: every out-of-range setting of the optimiser,
the schedule, training, data and the comparison, as messages (``range_problems``)."""

from __future__ import annotations

import math

from mr2.engine.config import CompareConfig, DataConfig, OptimConfig, RunConfig, TrainConfig


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _optim_rules(o: OptimConfig) -> list[tuple[bool, str]]:
    return [
        (_finite(o.lr) and o.lr > 0, f"optim.lr must be finite and > 0, got {o.lr}"),
        (
            _finite(o.momentum) and 0 <= o.momentum < 1,
            f"optim.momentum must lie in [0, 1), got {o.momentum}",
        ),
        (not (o.nesterov and o.momentum == 0), "optim.nesterov needs optim.momentum > 0"),
        (
            len(o.betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in o.betas),
            f"optim.betas must be two values in [0, 1), got {o.betas}",
        ),
        (
            _finite(o.weight_decay) and o.weight_decay >= 0,
            f"optim.weight_decay must be finite and >= 0, got {o.weight_decay}",
        ),
        (
            _finite(o.warmup_epochs) and o.warmup_epochs >= 0,
            f"optim.warmup_epochs must be finite and >= 0, got {o.warmup_epochs}",
        ),
        (o.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {o.warmup_steps}"),
        (
            _finite(o.grad_clip) and o.grad_clip >= 0,
            f"optim.grad_clip must be finite and >= 0, got {o.grad_clip}",
        ),
    ]


def _train_rules(t: TrainConfig) -> list[tuple[bool, str]]:
    return [
        (t.epochs >= 1, f"train.epochs must be >= 1, got {t.epochs}"),
        (
            _finite(t.logits_max_mb) and t.logits_max_mb > 0,
            f"train.logits_max_mb must be finite and > 0, got {t.logits_max_mb}",
        ),
        (t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}"),
        (t.eval_batch_size >= 1, f"train.eval_batch_size must be >= 1, got {t.eval_batch_size}"),
        (t.seed >= 0, f"train.seed must be >= 0, got {t.seed}"),
        (t.log_every >= 1, f"train.log_every must be >= 1, got {t.log_every}"),
        (t.threads >= 0, f"train.threads must be >= 0 (0 = torch's default), got {t.threads}"),
        (
            t.select in ("last", "best_val"),
            f"train.select must be 'last' or 'best_val', got {t.select!r}",
        ),
        (
            t.amp_dtype in ("auto", "float16", "bfloat16"),
            f"train.amp_dtype must be auto|float16|bfloat16, got {t.amp_dtype!r}",
        ),
        (
            t.device in ("auto", "cpu", "cuda"),
            f"train.device must be auto|cpu|cuda, got {t.device!r}",
        ),
        (
            isinstance(t.compile, bool) or t.compile in COMPILE_MODES,
            f"train.compile must be true, false or one of {', '.join(COMPILE_MODES)}, "
            f"got {t.compile!r}",
        ),
    ]


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def _data_rules(d: DataConfig) -> list[tuple[bool, str]]:
    return [
        (
            _finite(d.val_fraction) and 0 <= d.val_fraction < 1,
            f"data.val_fraction must lie in [0, 1), got {d.val_fraction}",
        ),
        (d.split_seed >= 0, f"data.split_seed must be >= 0, got {d.split_seed}"),
        (
            not (d.split_follows_seed and d.split_seed),
            "data.split_seed is not used when data.split_follows_seed = true (each seed "
            "carves its split from train.seed): leave it at 0",
        ),
        (d.train_subset >= 0, f"data.train_subset must be >= 0 (0 = all), got {d.train_subset}"),
    ]


def _compare_rules(c: CompareConfig) -> list[tuple[bool, str]]:
    return [
        (
            all(_finite(a) and 0 <= a <= 1 for a in c.wise_alphas),
            "compare.wise_alphas must lie in [0, 1]",
        ),
        (
            c.select_metric in ("mean_class", "worst_class", "hard"),
            "compare.select_metric must be mean_class|worst_class|hard",
        ),
        (bool(c.methods), "compare.methods must name at least one method"),
        (bool(c.seeds) and min(c.seeds) >= 0, "compare.seeds must list seeds >= 0"),
        (len(set(c.seeds)) == len(c.seeds), f"compare.seeds has duplicates: {c.seeds}"),
        (len(set(c.methods)) == len(c.methods), f"compare.methods has duplicates: {c.methods}"),
        (c.jobs >= 0, f"compare.jobs must be >= 0 (0 = one per GPU or core), got {c.jobs}"),
    ]


def range_problems(cfg: RunConfig) -> list[str]:
    """Every out-of-range value of the optimiser, schedule, training and data settings."""
    rules = [
        *_optim_rules(cfg.optim),
        *_train_rules(cfg.train),
        *_data_rules(cfg.data),
        *_compare_rules(cfg.compare),
    ]
    return [message for ok, message in rules if not ok]
