"""``mr2`` command line: parses arguments and calls library functions, nothing else."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mr2 import extras, losses, plugins, report
from mr2.cli_args import imports, parser
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
from mr2.report.offsets import fit_runs, tag
from mr2.report.offsets import table as offsets_table


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


def _posthoc(args) -> int:
    rows = fit_runs(
        args.runs, objective=args.objective, tradeoff=args.tradeoff,
        min_overall=args.min_overall, reference=args.reference, out_dir=args.out,
    )  # fmt: skip
    print(offsets_table(rows))
    name = tag(args.objective, args.tradeoff, args.min_overall)
    where = Path(args.out or args.runs[0]) / f"posthoc-{name}.md"
    print(f"\nOffsets beside each run (offsets-{name}.json); {where}")
    return 0


def _demo(args) -> int:
    extras.require("report", "mr2 demo ends with a report; it")
    out = args.out or ("runs/demo-quick" if args.quick else "runs/demo")
    run_demo(out, data_dir=args.data_dir, quick=args.quick)
    return 0


def _diagnose(args) -> int:
    extras.require("report", "mr2 diagnose (correlations and their plot)")
    out = run_diagnose(args.run, args.features, args.split, args.out)
    print(f"spread vs accuracy: {out.result.correlation}; {out.json}")
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
    "posthoc": _posthoc,
    "demo": _demo,
    "diagnose": _diagnose,
    "extract": _extract,
    "evaluate": _evaluate,
    "zero-shot": _evaluate,
    "wise": _wise,
    "losses": _losses,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        plugins.load(imports(argv))  # first: the parser's choices read the registries
        args = parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (ValueError, OSError, ImportError, RunBusyError) as err:
        print(f"mr2: error: {err}", file=sys.stderr)
        return 2
