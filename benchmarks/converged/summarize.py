"""The power statement and training curves of a converged study, and its report folder.

For each method against the reference (ERM): the hard third (ranked as the report ranks
it, seed s on ERM's other seeds' validation accuracy: ``mr2.metrics.hard``) per seed, the
paired per-seed differences, their mean, standard error and exact sign-flip p-value, the
final training accuracy, and the number of seeds a paired t-test (alpha 0.05, power 0.8)
needs to detect a +1 point hard-third change at the measured spread of those differences.
Writes ``summary.md``, ``summary.json`` and ``training_curve.png`` into the study folder,
then copies the report
(report.md, per_class.csv, results.json, plots, the selections) into ``--into``.

    python benchmarks/converged/summarize.py STUDY_DIR --into benchmarks/converged/mlp_report
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from mr2.metrics import mean_std, seeds_for_power, sign_flip_p_value
from mr2.metrics.hard import (
    ClassEvidence,
    HardRanking,
    choose_ranking,
    display_groups,
    group_levels,
)
from mr2.report.backend import pyplot

REPORT_FILES = ("report.md", "per_class.csv", "results.json", "summary.md", "summary.json")


def runs(study: Path) -> dict[str, dict[int, dict]]:
    """method -> seed -> result.json of every finished test run (grid runs left out)."""
    out: dict[str, dict[int, dict]] = {}
    for path in sorted(study.glob("*/seed*/result.json")):
        result = json.loads(path.read_text())
        out.setdefault(path.parts[-3], {})[result["seed"]] = result
    return out


def _evidence(result: dict) -> ClassEvidence:
    val = result.get("val") or {}
    return ClassEvidence.of(
        result["test"]["per_class"], val.get("per_class"), result["test"].get("halves")
    )


def hard_ranking(found: dict[str, dict[int, dict]], reference: str) -> HardRanking:
    """The hard third as the report ranks it (``mr2.metrics.hard``): seed s on the
    reference's other seeds' validation accuracy, never on what is scored."""
    every = [_evidence(r) for runs_ in found.values() for r in runs_.values()]
    return choose_ranking({s: _evidence(r) for s, r in found[reference].items()}, every)


def _options(config: dict) -> dict:
    """A run's method settings: its procedure's options (JTT, LfF, DRW), else its loss's."""
    if config["train"]["procedure"] != "standard":
        return config["train"]["procedure_options"]
    return config["loss"]["options"]


def method_row(results: dict[int, dict], ref: dict[int, dict], ranking: HardRanking) -> dict:
    seeds = sorted(set(results) & set(ref))

    def hard(result: dict, seed: int) -> float:
        return 100 * group_levels(ranking, _evidence(result), seed)["hard"]

    hard_of = {s: hard(results[s], s) for s in seeds}
    ref_hard = {s: hard(ref[s], s) for s in seeds}
    diffs = [hard_of[s] - ref_hard[s] for s in seeds]
    row = {
        "seeds": seeds,
        "overall": mean_std([100 * results[s]["test"]["overall"] for s in seeds]).__dict__,
        "hard": mean_std(list(hard_of.values())).__dict__ if seeds else None,
        "hard_diffs": diffs,
        "final_train_acc": float(
            np.mean([100 * results[s]["history"][-1]["train_acc"] for s in seeds])
        ),
        "options": _options(next(iter(results.values()))["config"]),
        "preset": next(iter(results.values()))["config"]["loss"]["preset"],
    }
    if len(diffs) >= 2:
        d = np.array(diffs)
        sd = float(d.std(ddof=1))
        row.update(
            mean_diff=float(d.mean()),
            se=sd / np.sqrt(len(d)),
            sd=sd,
            positive=int((d > 0).sum()),
            p_sign_flip=sign_flip_p_value(d),
            seeds_for_1pt=seeds_for_power(sd, 1.0) if sd > 0 else 2,
        )
    return row


def curves(found: dict[str, dict[int, dict]], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, results in found.items():
        acc = np.mean([[100 * h["train_acc"] for h in r["history"]] for r in results.values()], 0)
        ax.plot(np.arange(1, len(acc) + 1), acc, label=method)
    ax.set(xlabel="epoch", ylabel="training accuracy (%, mean over seeds)", title=path.parent.name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: dict[str, dict], reference: str) -> str:
    lines = [
        "| method | settings | seeds | overall | hard third | hard vs ERM: mean ± SE (seeds up, "
        "p) | final train acc | seeds for +1 pt |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, r in rows.items():
        settings = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "defaults"
        if r["preset"]:
            settings = f"preset {r['preset']}; {settings}"
        ov, hd = r["overall"], r["hard"]
        gain = "reference"
        power = "-"
        if method != reference and "mean_diff" in r:
            gain = (
                f"{r['mean_diff']:+.2f} ± {r['se']:.2f} ({r['positive']}/{len(r['seeds'])}, "
                f"p = {r['p_sign_flip']:.3g})"
            )
            power = str(r["seeds_for_1pt"])
        lines.append(
            f"| {method} | {settings} | {len(r['seeds'])} | {ov['mean']:.2f} ± {ov['std']:.2f} | "
            f"{hd['mean']:.2f} ± {hd['std']:.2f} | {gain} | {r['final_train_acc']:.2f} | {power} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--reference", default="ce")
    ap.add_argument("--into", type=Path, help="report folder to copy the results into")
    args = ap.parse_args()
    found = runs(args.study)
    if args.reference not in found:
        sys.exit(f"no finished {args.reference} runs under {args.study}")
    ranking = hard_ranking(found, args.reference)
    hard = display_groups(ranking)["hard"]
    ref = found[args.reference]
    rows = {m: method_row(r, ref, ranking) for m, r in found.items()}
    text = (
        f"# {args.study.name}: power statement\n\nHard third: {ranking.label} ({args.reference}; "
        f"shown: classes {sorted(hard)}). Differences are paired by seed; p: exact "
        "sign-flip test over seeds; seeds for +1 pt: a paired t-test (two-sided alpha 0.05, "
        "power 0.8) at the measured standard deviation of the per-seed differences.\n\n"
        + table(rows, args.reference)
        + "\n"
    )
    (args.study / "summary.md").write_text(text)
    (args.study / "summary.json").write_text(json.dumps({"hard": hard, "methods": rows}, indent=1))
    curves(found, args.study / "training_curve.png")
    print(text)
    if args.into:
        args.into.mkdir(parents=True, exist_ok=True)
        for path in [*args.study.glob("*.png"), *(args.study / n for n in REPORT_FILES)]:
            if path.is_file():
                shutil.copy2(path, args.into / path.name)
        for path in args.study.glob("*/selection.json"):
            shutil.copy2(path, args.into / f"selection_{path.parent.name}.json")


if __name__ == "__main__":
    main()
