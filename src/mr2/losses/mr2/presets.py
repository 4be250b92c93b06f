"""MR²'s named settings: the constructor arguments of the paper's formula and of the
authors' code (``MR2Loss.from_preset``)."""

from __future__ import annotations

from typing import Any

PRESETS = ("paper", "official", "authors_clip")


def preset_options(name: str, num_classes: int, feature_dim: int | None) -> dict[str, Any]:
    """The constructor arguments of a named setting.

    - ``"paper"``: the paper's formula: 2-norm statistics, temperature 1, lambda 0.1.
    - ``"official"``: the authors' ImageNet / CLIP code (needs ``feature_dim`` = D):
      5-norm margin statistics, exponent divided by 10 * D (``rep_temperature``), the
      representation term summed over classes of per-class means
      (``rep_reduction="class"``) and scaled by D / 10 / K (folded into ``lambda_rep =
      0.1 * D / (10 K)``), EMA decay 0.999. Their EMA keeps ||batch mean||_p^2 and the
      batch deviation per class; ours keeps count-weighted sums of f and ||f||^2 (the
      p-norm deviation pooled around the running mean, ``functional.ema_merge``): for
      p = 2 both estimate E ||f||^2 of the class, and ours is not biased low when a
      class has one sample per batch. Differences from
      their code, all bug fixes: K is the
      real number of classes (not 1000) and unseen classes neither enter the margin
      normaliser nor change the mean margin; ``s_bar`` is a 2-norm quantity like the
      distances it is compared with (theirs subtracts a 5-norm s_bar); statistics live
      in one persistent module (not rebuilt each epoch), update only in training mode
      (never on evaluation batches), are summed across processes, checkpointed, pooled
      count-weighted and computed without a per-class Python loop.
    - ``"authors_clip"``: ``"official"`` plus the mean margin the authors' CLIP runs
      effectively had: their code normalises the margins over a hard-wired 1000
      classes, so with K < 1000 seen classes the mean margin is 1000 / K (about 27 on
      Pets), i.e. ``c_bar = 1000 / K``. (Their CLIP code also fed the loss unnormalised
      image features: set the backbone's ``normalize = false`` for that; mr2's recipes
      feed normalised ones.)
    """

    if name == "paper":
        kwargs: dict[str, Any] = {"lambda_rep": 0.1, "norm_p": 2.0, "rep_temperature": 1.0}
    elif name == "official":
        if feature_dim is None or feature_dim < 1:
            raise ValueError("the 'official' preset needs feature_dim (the feature width D)")
        kwargs = {
            "norm_p": 5.0,
            "rep_temperature": 10.0 * feature_dim,
            "lambda_rep": 0.1 * feature_dim / 10.0 / num_classes,
            "rep_reduction": "class",
            "ema_decay": 0.999,
        }
    elif name == "authors_clip":
        kwargs = {
            **preset_options("official", num_classes, feature_dim),
            "c_bar": 1000.0 / num_classes,
        }
    else:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return kwargs
