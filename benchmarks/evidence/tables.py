"""The evidence tables of the README, regenerated from committed per-class files.

Every study's per-class accuracies are committed as a CSV (one row per method, seed and
class: test accuracy, and where the runs have them validation accuracy and the accuracies
on the two cross-fitting halves of the test set). This script reads those files only, so
anyone can recompute every number, and writes ``benchmarks/evidence/tables.md``:

- hard third ranked where it is not scored (``mr2.metrics.hard``): seed s on ERM's
  validation accuracies of the other seeds; for the older studies, which kept test scores
  only, on ERM's other seeds' test accuracies (paired gains unbiased, levels not: said);
- beside it, the old test-ranked figure, labelled "ranked on test: optimistic";
- worst class and max - min (each run's own), paired gains with SE, seeds up, the sign-flip
  p and the smallest p the seeds allow.

    python benchmarks/evidence/tables.py                       # tables.md from the CSVs
    python benchmarks/evidence/tables.py --export RUNS_DIR[=SUFFIX] ... --into FILE.csv
        # a per-class CSV from finished runs (SUFFIX renames their methods, e.g. a second
        # folder of ce_temperature at another temperature: "=_t0.3")
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from mr2.metrics import paired_comparison, sign_flip_p_value
from mr2.metrics.hard import ClassEvidence, Fold, HardRanking, choose_ranking, group_levels
from mr2.records.storage import save_text
from mr2.report.results import collect
from mr2.report.tables import CSV_FIELDS as FIELDS

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
# (title, per-class CSV relative to the repository, controls to compare MR² with)
STUDIES = [
    (
        "CIFAR-10, all 45,000 training images on one H200, a longer budget: airbench at half "
        "width, 30 epochs, bf16; ERM, MR² (defaults), group DRO (step 0.1, from the 12-epoch "
        "study's validation); 10 seeds",
        "benchmarks/cifar10/gpu_long_report/per_class.csv",
    ),
    (
        "CIFAR-10, all 45,000 training images on one H200: airbench at half width (32-64-128), "
        "12 epochs, bf16, settings on validation; seeds 0-7 (focal 0-6) in a 410 s budget",
        "benchmarks/cifar10/gpu_per_class.csv",
    ),
    (
        "CIFAR-10 at zero training error (CPU): 2,000-image training subset, airbench at "
        "quarter width, no augmentation, 30 epochs (100 % training accuracy), defaults",
        "benchmarks/cifar10/cpu_zero_error_report/per_class.csv",
    ),
    (
        "CIFAR-10 (all of it, from the shared JPEG file): 5,000-image training subset, airbench "
        "at quarter width (16-32-64), 15 epochs, settings on validation",
        "benchmarks/cifar10/cpu_per_class.csv",
    ),
    (
        "Fashion-MNIST MLP, 2,000 training images, 150 epochs (100 % training accuracy), "
        "re-run with validation scores",
        "benchmarks/evidence/subset_2k_per_class.csv",
    ),
    (
        "Fashion-MNIST MLP to a plateau (30 epochs), re-run with validation scores",
        "benchmarks/evidence/mlp_per_class.csv",
    ),
    (
        "Fashion-MNIST MLP to a plateau (30 epochs) [older runs: test scores only]",
        "benchmarks/converged/mlp_report/per_class.csv",
    ),
    (
        "Fashion-MNIST MLP, 2,000 images [older runs of the same study: test only]",
        "benchmarks/converged/subset_mlp_2k_report/per_class.csv",
    ),
    (
        "Fashion-MNIST MLP, 10,000 images, 60 epochs [older runs: test only]",
        "benchmarks/converged/subset_mlp_10k_report/per_class.csv",
    ),
    (
        "MR² presets on the plateau MLP [older runs: test only]",
        "benchmarks/converged/mlp_presets_report/per_class.csv",
    ),
    (
        "Fashion-MNIST MLP, 5 epochs [older runs: test only]",
        "benchmarks/fashion_mnist/mlp_report/per_class.csv",
    ),
    (
        "Fashion-MNIST CNN, 4 epochs [older runs: test only]",
        "benchmarks/fashion_mnist/cnn_report/per_class.csv",
    ),
    (
        "Fashion-MNIST linear probe [older runs: test only]",
        "benchmarks/fashion_mnist/probe_report/per_class.csv",
    ),
    (
        "CIFAR-10 JPEG test set, ResNet-32 [older runs: test only]",
        "benchmarks/cifar10_jpeg/resnet32_report/per_class.csv",
    ),
]


def export(sources: list[str], into: Path) -> None:
    """Write the per-class CSV of the finished runs under each source folder."""
    rows = []
    for source in sources:
        folder, _, suffix = source.partition("=")
        for r in collect([folder]):
            val = r.val.per_class if r.val else [None] * len(r.test.per_class)
            halves = r.test.halves or [[None] * len(r.test.per_class)] * 2
            for c, name in enumerate(r.dataset.class_names):
                rows.append(
                    [
                        r.method + suffix,
                        r.seed,
                        c,
                        name,
                        r.test.per_class[c],
                        r.test.support[c],
                        val[c],
                        halves[0][c],
                        halves[1][c],
                    ]
                )
    text = [",".join(FIELDS)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    save_text("\n".join(text) + "\n", into)


def load(path: Path) -> tuple[dict[str, dict[int, ClassEvidence]], list[str]]:
    """method -> seed -> ClassEvidence, and the class names, from a per-class CSV."""
    cells: dict[tuple[str, int], dict[str, list]] = {}
    names: dict[int, str] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["method"], int(row["seed"]))
            c = int(row["class"])
            names[c] = row["class_name"]
            entry = cells.setdefault(key, {k: [] for k in ("test", "val", "a", "b")})
            entry["test"].append((c, float(row["accuracy"])))
            for col, k in (("val_accuracy", "val"), ("test_half_a", "a"), ("test_half_b", "b")):
                if row.get(col):
                    entry[k].append((c, float(row[col])))
    k = len(names)

    def vec(pairs):
        if len(pairs) != k:
            return None
        out = np.full(k, np.nan)
        for c, v in pairs:
            out[c] = v
        return out

    found: dict[str, dict[int, ClassEvidence]] = {}
    for (method, seed), e in sorted(cells.items()):
        halves = None if vec(e["a"]) is None else np.stack([vec(e["a"]), vec(e["b"])])
        found.setdefault(method, {})[seed] = ClassEvidence(vec(e["test"]), vec(e["val"]), halves)
    return found, [names[c] for c in range(k)]


def _test_ranked(ref: dict[int, ClassEvidence]) -> HardRanking:
    """The old estimator: every seed ranked on the reference's mean test accuracy."""
    fold = (Fold(np.mean([r.test for r in ref.values()], axis=0), "test"),)
    return HardRanking("test, same seed", {s: fold for s in ref}, fold)


def _pm(values) -> str:
    v = 100 * np.asarray(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():+.2f}"
    return (
        f"{v.mean():+.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f} ({int((v > 0).sum())}/{len(v)})"
    )


def _gain(diffs, p_min) -> str:
    return f"{_pm(diffs)}, p {sign_flip_p_value(diffs):.3g} (min {p_min:.3g})"


def study_table(path: Path) -> list[str]:
    runs, names = load(path)
    ref = runs["ce"]
    ranking = choose_ranking(ref, [e for m in runs.values() for e in m.values()])
    old = _test_ranked(ref)
    hard_names = [names[c] for c in ranking_groups(ranking)]
    lines = [
        f"Hard third {ranking.label} (shown: {', '.join(hard_names)}).",
        "",
        "| method | seeds | mean-class | hard | hard, ranked on test (optimistic) | worst class "
        "| max-min | hard vs ERM (± SE, seeds up) | hard vs ERM ranked on test (optimistic) "
        "| worst class vs ERM |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, by_seed in sorted(runs.items(), key=lambda kv: (kv[0] != "ce", kv[0])):
        seeds = sorted(by_seed)
        lv = [group_levels(ranking, by_seed[s], s)["hard"] for s in seeds]
        lv_old = [group_levels(old, by_seed[s], s)["hard"] for s in seeds]
        tests = np.array([by_seed[s].test for s in seeds])
        row = [
            method,
            str(len(seeds)),
            _ms(np.nanmean(tests, axis=1)),
            _ms(lv),
            _ms(lv_old),
            _ms(np.nanmin(tests, axis=1)),
            _ms(np.nanmax(tests, axis=1) - np.nanmin(tests, axis=1)),
        ]
        paired = [s for s in seeds if s in ref]
        if method == "ce" or len(paired) < 2:
            row += ["reference" if method == "ce" else "n/a"] * 3
        else:
            m = [by_seed[s] for s in paired]
            b = [ref[s] for s in paired]
            new = paired_comparison(m, b, ranking=ranking, seeds=paired)
            was = paired_comparison(m, b, ranking=old, seeds=paired)
            row += [
                _gain(new.hard_gain_per_seed, new.p_seeds_min),
                _pm(was.hard_gain_per_seed),
                _gain(new.worst_gain_per_seed, new.p_seeds_min),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, "", *_controls(runs, ranking), ""]


def ranking_groups(ranking: HardRanking) -> list[int]:
    from mr2.metrics.hard import display_groups

    return display_groups(ranking)["hard"]


def _ms(values) -> str:
    v = 100 * np.asarray(values, dtype=float)
    return f"{v.mean():.2f}" if len(v) < 2 else f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"


def _controls(runs: dict[str, dict[int, ClassEvidence]], ranking: HardRanking) -> list[str]:
    """MR² against each control (temperature, compactness), paired by seed, on the same
    hard classes."""
    controls = [m for m in runs if m.startswith(("ce_temperature", "center", "supcon"))]
    mr2s = [m for m in runs if m.startswith("mr2")]
    if not controls or not mr2s:
        return []
    lines = ["| MR² vs control | hard (± SE, seeds up) | worst class |", "|---|---|---|"]
    for m in mr2s:
        for c in controls:
            seeds = sorted(set(runs[m]) & set(runs[c]))
            if len(seeds) < 2:
                continue
            cmp = paired_comparison(
                [runs[m][s] for s in seeds],
                [runs[c][s] for s in seeds],
                ranking=ranking,
                seeds=seeds,
            )
            lines.append(
                f"| {m} vs {c} | {_gain(cmp.hard_gain_per_seed, cmp.p_seeds_min)} | "
                f"{_gain(cmp.worst_gain_per_seed, cmp.p_seeds_min)} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--export", nargs="+", help="run folders (FOLDER or FOLDER=SUFFIX)")
    p.add_argument("--into", type=Path, help="the per-class CSV --export writes")
    p.add_argument("--out", type=Path, default=HERE / "tables.md")
    args = p.parse_args(argv)
    if args.export:
        if args.into is None:
            p.error("--export needs --into FILE.csv")
        export(args.export, args.into)
        return 0
    text = [
        "# Evidence tables (generated by benchmarks/evidence/tables.py from committed files)",
        "",
        "Accuracies in %, mean ± std over seeds; gains: mean ± standard error of the paired "
        "per-seed differences (seeds where positive), the exact sign-flip p and the smallest "
        "p those seeds allow. Worst class and max-min are each run's own.",
        "",
    ]
    for title, rel in STUDIES:
        path = ROOT / rel
        if not path.is_file():
            print(f"missing {rel}: skipped", file=sys.stderr)
            continue
        text += [f"## {title}", "", f"From `{rel}`.", "", *study_table(path)]
    save_text("\n".join(text), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
