"""``mr2`` command line: parses arguments and calls library functions, nothing else."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mr2 import extras, losses, plugins, report
from mr2._version import __version__
from mr2.demo import run_demo
from mr2.engine import config, procedures
from mr2.engine.compare import RunsFailed, check_compare, preflight, run_compare
from mr2.engine.context import device_context
from mr2.engine.diagnose import run_diagnose
from mr2.engine.extract import extract
from mr2.engine.identity import RunBusyError
from mr2.engine.saved import evaluate_run
from mr2.engine.train import evaluate_initial, train
from mr2.engine.wise import run_wise, wise_table


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
        help="import a module that registers models, datasets or losses (repeatable)",
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
        choices=["local", "pool", "ray", "slurm"],
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


def _result_line(result, where) -> str:
    return (
        f"test accuracy {result.test.overall:.4f}; "
        f"worst class {result.test.summary['worst_class']:.4f}; {where}"
    )


def _print_report(built: report.Report) -> None:
    print(built.text(), f"\nReport: {built.path}", sep="\n")


def _train(args) -> int:
    cfg = config.load(args.config, args.set)
    result = train(cfg, args.out, resume=not args.no_resume, overwrite=args.overwrite)
    print(_result_line(result, args.out))
    return 0


def _compare_overrides(args) -> list[str]:
    overrides = list(args.set)
    if args.methods:
        overrides.append(f"compare.methods={args.methods!r}".replace("'", '"'))
    if args.seeds:
        overrides.append(f"compare.seeds={args.seeds!r}")
    if args.executor:
        overrides.append(f'compare.executor="{args.executor}"')
    if args.jobs is not None:
        overrides.append(f"compare.jobs={args.jobs}")
    return overrides


def _compare(args) -> int:
    cfg = config.load(args.config, _compare_overrides(args))
    extras.require("report", "mr2 compare builds a report when its runs finish; it")
    if args.check:
        check_compare(cfg)
        preflight(cfg, Path(args.out), overwrite=args.overwrite)
        print(f"{args.config or 'the configuration'}: every run checks out")
        return 0
    lead = int(os.environ.get("RANK", "0")) == 0  # under torchrun: rank 0 alone speaks
    try:
        run_compare(
            cfg,
            args.out,
            resume=not args.no_resume,
            overwrite=args.overwrite,
            log=print if lead else (lambda *_: None),
        )
    except RunsFailed as failed:
        if lead and any(Path(args.out).rglob("result.json")):  # report what finished
            _print_report(report.build([args.out], args.out, reference=cfg.compare.reference))
        print(f"mr2: error: {failed}", file=sys.stderr)
        return 1
    if lead:
        _print_report(report.build([args.out], args.out, reference=cfg.compare.reference))
    return 0


def _report(args) -> int:
    if not args.runs and not args.predictions:
        raise ValueError("give run directories and/or --predictions FILE ...")
    out = args.out or (args.runs[0] if args.runs else None)
    if out is None:
        raise ValueError("--predictions needs --out (the folder for runs and report)")
    recorded = report.record_predictions(args.predictions, out) if args.predictions else []
    _print_report(report.build([*args.runs, *recorded], out, reference=args.reference))
    return 0


def _demo(args) -> int:
    extras.require("report", "mr2 demo ends with a report; it")
    out = args.out or ("runs/demo-quick" if args.quick else "runs/demo")
    run_demo(out, data_dir=args.data_dir, quick=args.quick)
    return 0


def _diagnose(args) -> int:
    extras.require("report", "mr2 diagnose (correlations and their plot)")
    out = run_diagnose(args.run, args.features, args.split, args.out)
    print(f"spread vs accuracy: {out['result'].get('correlation')}; {out['json']}")
    return 0


def _extract(args) -> int:
    cfg = config.load(args.config, args.set)
    for name, info in extract(cfg).items():
        state = "reused" if info["reused"] else f"extracted in {info['seconds']:.1f} s"
        print(f"{name:5s} {info.get('folder') or '(empty split)'}  {state}")
    return 0


def _evaluate(args) -> int:
    """``evaluate RUN_DIR``: a finished run; ``evaluate --config --out`` / ``zero-shot``: the
    model before training."""
    if args.command == "evaluate" and args.run:
        if args.config:
            raise ValueError("give RUN_DIR (a finished run) or --config/--out, not both")
        ctx = device_context(args.device)
        done = evaluate_run(args.run, args.split, args.set, ctx, args.out, args.overwrite)
        print(
            f"{args.split} accuracy {done['overall']:.4f}; worst class "
            f"{done['summary']['worst_class']:.4f}; {done['path']}"
        )
        return 0
    if not args.out:
        raise ValueError("evaluating an untrained model needs --out RUN_DIR")
    cfg = config.load(args.config, args.set)
    print(_result_line(evaluate_initial(cfg, args.out, overwrite=args.overwrite), args.out))
    return 0


def _wise(args) -> int:
    print(wise_table(run_wise(args.run, args.alphas)))
    return 0


def _losses(args) -> int:
    for name in losses.available():
        print(f"{name:18s} {losses.describe(name)}")
    print("\nloop-level methods (a procedure around a loss; run by name like a loss in compare):")
    for name, text in procedures.PROCEDURES.describe().items():
        if name != "standard":
            loss = procedures.DEFAULT_LOSS.get(name, "ce")
            title = text.split(":")[0].split(". ")[0]  # "Just Train Twice (Liu et al., 2021)"
            print(f"{name:18s} {title} [loss: {loss}]")
    return 0


COMMANDS = {
    "train": _train,
    "compare": _compare,
    "report": _report,
    "demo": _demo,
    "diagnose": _diagnose,
    "extract": _extract,
    "evaluate": _evaluate,
    "zero-shot": _evaluate,
    "wise": _wise,
    "losses": _losses,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        plugins.load(args.imports)
        return COMMANDS[args.command](args)
    except (ValueError, OSError, ImportError, RunBusyError) as err:
        print(f"mr2: error: {err}", file=sys.stderr)
        return 2
