"""WiSE-FT's rows scored: every alpha's model on validation and test, with easy / medium /
hard ranked on the fine-tuned model (alpha 1), the same classes for every alpha and never
the accuracies scored."""

from __future__ import annotations

from dataclasses import replace

from mr2.engine.context import Context
from mr2.engine.evaluate import split_scores
from mr2.engine.run import evaluate_split
from mr2.metrics.hard import ClassEvidence, HardRanking, choose_ranking, group_levels
from mr2.records.result import SplitScores
from mr2.records.wise import WiseRow


def scores(model, split, num_classes: int, cfg, ctx: Context) -> SplitScores | None:
    """``split`` evaluated with its cross-fitting halves; None for an empty split."""
    if not len(split):
        return None
    return split_scores(evaluate_split(cfg, ctx, model, split, num_classes, halves=True))


def _evidence(s: SplitScores) -> ClassEvidence:
    return ClassEvidence.of(s.per_class, halves=s.halves)


def rankings(end: WiseRow) -> dict[str, HardRanking]:
    """Validation rows are ranked on the fine-tuned model's validation accuracy (selection
    happens there); test rows on it too, or on its cross-fitted test halves without one."""
    if end.test is None:
        raise ValueError("WiSE-FT needs the run's test split (it has no test samples)")
    val = end.val.per_class if end.val else None
    ranking = choose_ranking({0: ClassEvidence.of(end.test.per_class, val, end.test.halves)})
    if end.val is None:
        return {"test": ranking}
    return {"test": ranking, "val": choose_ranking({0: ClassEvidence.of(end.val.per_class, val)})}


def ranked(s: SplitScores | None, ranking: HardRanking) -> SplitScores | None:
    """``s`` with easy / medium / hard of its summary from ``ranking``."""
    if s is None:
        return None
    return replace(s, summary={**s.summary, **group_levels(ranking, _evidence(s), 0)})


def rank_rows(rows: list[WiseRow], finetuned, dataset, cfg, ctx: Context) -> dict[str, str]:
    """Every row's summaries ranked on the fine-tuned model (alpha 1, evaluated anew if
    not among the alphas); returns each split's ranking label."""
    end = next((r for r in rows if r.alpha == 1.0), None)
    if end is None:
        n = dataset.num_classes
        end = WiseRow(
            1.0,
            scores(finetuned, dataset.test, n, cfg, ctx),
            scores(finetuned, dataset.val, n, cfg, ctx),
        )
    found = rankings(end)
    for r in rows:
        r.test = ranked(r.test, found["test"])
        r.val = ranked(r.val, found["val"]) if "val" in found else r.val
    return {split: ranking.label for split, ranking in found.items()}
