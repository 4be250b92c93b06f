"""The ``mr2`` command line's commands and their arguments (``parser``); ``mr2.cli`` runs
them. The modules of ``--import`` are read first (``imports``) and loaded before the parser
is built, so its choices (executors, the methods listed) come from the registries with the
user's plug-ins in them."""

from __future__ import annotations

import argparse

from mr2 import losses
from mr2._version import __version__
from mr2.engine import executors


def imports(argv: list[str]) -> list[str]:
    """The modules named by ``--import`` in ``argv`` (read before the full parser)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--import", dest="imports", action="append", default=[])
    return pre.parse_known_args(argv)[0].imports


def _config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--config", help="TOML file with the run's settings (see configs/)")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting, e.g. --set loss.name=mr2 (repeatable)",
    )


def _overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace runs of another configuration found under --out (removed only once "
        "the new run is set up); without it such a run is an error",
    )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mr2", description="Class-wise fair classifiers (MR²).")
    ap.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module that registers models, datasets, losses, executors or loggers "
        "(repeatable)",
    )
    ap.add_argument("--version", action="version", version=f"mr2 {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    _training_commands(sub)
    _report_commands(sub)
    _model_commands(sub)
    sub.add_parser("losses", help="list the registered losses and procedures")
    return ap


def _training_commands(sub) -> None:
    p = sub.add_parser("train", help="train one run")
    _config_args(p)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="start over even if a checkpoint of this configuration exists (default: resume)",
    )
    _overwrite_arg(p)
    p = sub.add_parser("compare", help="methods x seeds, resumable, then the report")
    _config_args(p)
    p.add_argument("--out", required=True, help="comparison directory")
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="every run starts over, finished ones too (default: finished runs are reused, "
        "interrupted ones resume from their checkpoints)",
    )
    _overwrite_arg(p)
    p.add_argument("--methods", nargs="+", help=f"losses to compare: {losses.available()}")
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument(
        "--executor",
        choices=executors.available(),
        help="where the runs train (compare.executor; default local: one after another)",
    )
    p.add_argument("--jobs", type=int, help="runs at once (compare.jobs; 0 = GPUs or cores)")
    p.add_argument(
        "--check",
        action="store_true",
        help="check every run's configuration (names, options, ranges, grid points) and the "
        "run folders under --out, then exit without training",
    )
    p = sub.add_parser("demo", help="the main job: ERM vs MR² on Fashion-MNIST, 3 seeds")
    p.add_argument("--out", help="default: runs/demo (runs/demo-quick with --quick)")
    p.add_argument("--data-dir", default="", help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--quick", action="store_true", help="1 seed, 2 epochs (a smoke test)")


def _report_commands(sub) -> None:
    p = sub.add_parser("report", help="the report of saved runs (or of prediction files)")
    p.add_argument("runs", nargs="*", help="run or comparison directories")
    p.add_argument(
        "--predictions",
        nargs="+",
        default=[],
        metavar="FILE",
        help=".npz (y_true, y_pred or logits; optional method, seed, features, class_names) "
        "or .csv (y_true, y_pred, optional method, seed) files, recorded as runs under --out",
    )
    p.add_argument("--out", help="report directory (default: the first RUN_DIR)")
    p.add_argument(
        "--reference",
        default=None,
        help="baseline that ranks the classes (default: ce, or the first method without ce)",
    )
    p = sub.add_parser(
        "posthoc",
        help="fit per-class logit offsets on each run's validation logits; before / after "
        "on validation and test",
    )
    p.add_argument("runs", nargs="+", help="run or comparison directories")
    p.add_argument("--objective", default="worst", choices=["worst", "hard"])
    p.add_argument(
        "--tradeoff",
        type=float,
        default=None,
        help="weight of the objective against overall accuracy in [0, 1] (default: 1 for "
        "worst, 0.5 for hard)",
    )
    p.add_argument(
        "--min-overall",
        type=float,
        default=None,
        help="best objective among offsets keeping validation overall accuracy >= this",
    )
    p.add_argument(
        "--reference", default="ce", help="the method whose validation ranks hard classes"
    )
    p.add_argument("--out", help="folder for posthoc-*.md / .json (default: the first path)")
    p = sub.add_parser("diagnose", help="spread vs accuracy of a saved run or a feature file")
    p.add_argument("run", nargs="?", help="a finished run directory")
    p.add_argument(
        "--features",
        help=".npz with features (N, D), labels (N,) and optional preds (N,) or logits (N, K)",
    )
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--out", help="output folder (default: RUN/diagnose or next to the file)")


def _model_commands(sub) -> None:
    p = sub.add_parser(
        "extract", help="write a backbone's features of every split to the feature cache"
    )
    _config_args(p)
    p = sub.add_parser(
        "evaluate",
        help="evaluate a finished run (RUN_DIR), or the configured model untrained "
        "(--config ... --out: e.g. CLIP zero-shot)",
    )
    p.add_argument("run", nargs="?", help="a finished run directory: evaluate its final.pt")
    p.add_argument("--split", default="test", choices=["val", "test"], help="with RUN_DIR")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="with RUN_DIR")
    _config_args(p)
    p.add_argument(
        "--out",
        help="with RUN_DIR: the JSON file to write (default RUN_DIR/eval_SPLIT.json); "
        "untrained model: its run directory (result.json)",
    )
    _overwrite_arg(p)
    p = sub.add_parser(
        "zero-shot", help="evaluate the configured model before any training (CLIP zero-shot)"
    )
    _config_args(p)
    p.add_argument("--out", required=True, help="run directory (result.json)")
    _overwrite_arg(p)
    p = sub.add_parser("wise", help="WiSE-FT: evaluate zero-shot / fine-tuned interpolations")
    p.add_argument("run", help="a finished fine-tuning run directory")
    p.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        default=[0.0, 0.25, 0.5, 0.75, 1.0],
        help="interpolation weights of the fine-tuned model (0 = zero-shot, 1 = fine-tuned)",
    )
