"""A run directory from a configuration: check it, lock and set up the directory (reuse,
resume or refuse by identity), ``fit`` the run, evaluate the test split once and write
final.pt and result.json. ``evaluate_initial`` does the same for an untrained model.

Validation is carved from the training split; the test split is evaluated once, at the end,
with the model chosen by ``train.select`` (never chosen on test).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from torch import nn

from mr2 import data as mr2_data
from mr2 import distributed
from mr2.engine import identity, kept_logits, validate
from mr2.engine.config import RunConfig, to_dict, to_toml
from mr2.engine.context import Context, setup
from mr2.engine.evaluate import evaluate_with_features, split_scores
from mr2.engine.fit import fit
from mr2.engine.run import Run, build, evaluate_split, prepare
from mr2.engine.run_warnings import run_warnings
from mr2.metrics import disparity_summary
from mr2.records import storage
from mr2.records.logits import owner_of_result, save_logits
from mr2.records.result import (
    DatasetInfo,
    EpochRecord,
    RunResult,
    ValSummary,
    read_result,
)


def validation_summary(history: list[EpochRecord], epoch: int | None) -> ValSummary | None:
    """Validation numbers of the selected epoch: what tuning may look at (never test)."""
    record = next((h for h in history if h.epoch == epoch), None)
    if record is None or record.val_per_class is None or record.val_acc is None:
        return None
    s = disparity_summary(record.val_per_class)
    return ValSummary(record.val_per_class, s.mean_class, s.worst_class, s.hard, record.val_acc)


def method_label(cfg: RunConfig) -> str:
    """The method a run stands for: its procedure if not standard, else its loss."""
    return cfg.train.procedure if cfg.train.procedure != "standard" else cfg.loss.name


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = True,
    overwrite: bool = False,
    wait: bool = False,
    show_progress: bool | None = None,
) -> RunResult:
    """Train one run into ``run_dir`` (run.json, config.toml, log.jsonl, checkpoint.pt,
    final.pt, result.json) and return its result.

    The whole configuration is checked first. A run directory of the same configuration
    (``identity``) is reused when finished and resumed from its checkpoint otherwise
    (``resume=False``: started over); one of another configuration is an error, unless
    ``overwrite``: then it is removed once the new run is set up. ``wait``: wait for another
    process that holds the run's lock instead of raising ``RunBusyError``."""
    validate.check_run(cfg)
    ctx = setup(cfg)  # joins the torchrun process group: only rank 0 locks and writes
    run_dir = Path(run_dir)
    if resume and run_dir.is_dir() and not os.access(run_dir, os.W_OK):  # no lock possible:
        found = identity.inspect_run(run_dir, cfg)  # a finished run is read as it is
        if found.state is identity.State.MATCH and found.finished:
            return read_result(run_dir)
    with _run_lock(run_dir, cfg, "train", overwrite=overwrite, wait=wait) as found:
        if found.finished and resume:  # a finished run of this configuration: reused
            return read_result(run_dir)
        run = prepare(cfg, run_dir, resume, train_run=train, ctx=ctx)
        if (too_large := kept_logits.size_problem(cfg, run.dataset)) is not None:
            raise ValueError(too_large)  # before anything trains or is written
        fresh = not resume or found.state is not identity.State.MATCH
        run.proc.resume = not fresh
        _start_dir(run_dir, cfg, found, clear=fresh and found.state is not identity.State.FRESH)
        run.proc.prepare()
        history, selected = fit(run, run_dir, resume=not fresh, show_progress=show_progress)
        if run.ctx.rank == 0:
            for warning in run_warnings(history, run.dataset.num_classes, cfg.loss.name):
                print(f"warning ({run_dir}): {warning}", file=sys.stderr, flush=True)
        return _finish(run, run_dir, history, selected)


def _finish(run: Run, run_dir: Path, history: list[EpochRecord], selected: int) -> RunResult:
    """The one test evaluation; final.pt and result.json (rank 0)."""
    result = build_result(run.cfg, run.ctx, run.dataset, run.model, history, selected)
    kept = (
        kept_logits.run_logits(run.model, run.dataset, run.cfg, run.ctx)
        if run.cfg.train.keep_logits
        else None
    )  # every process takes part; rank 0 writes it before result.json marks the run done
    if run.ctx.rank == 0:
        if kept is not None:
            save_logits(run_dir, kept, owner_of_result(result))
        storage.save_torch(
            {"model": run.model.state_dict(), "loss": run.loss_fn.state_dict()},
            run_dir / "final.pt",
        )
        storage.save_json(result.to_dict(), run_dir / "result.json")
    distributed.barrier()
    return result


@contextlib.contextmanager
def _run_lock(run_dir: Path, cfg: RunConfig, kind: str, *, overwrite: bool, wait: bool):
    """Check the run directory's identity (nothing modified on a mismatch), then hold its
    lock (rank 0) and yield the identity found under the lock."""
    identity.check(run_dir, cfg, kind, overwrite=overwrite)  # every rank: reads only
    distributed.barrier()
    lock = identity.RunLock(run_dir, wait=wait) if distributed.rank() == 0 else None
    with lock or contextlib.nullcontext():
        found = identity.check(run_dir, cfg, kind, overwrite=overwrite)
        distributed.barrier()
        yield found


def _start_dir(run_dir: Path, cfg: RunConfig, found: identity.Inspection, *, clear: bool) -> None:
    """Rank 0: remove an old run if asked, stale temporary files, then record the identity."""
    if distributed.rank() == 0:
        if clear:
            identity.clear(run_dir)
        storage.remove_stale_tmp(run_dir)
        identity.write_record(run_dir, found)
        storage.save_text(to_toml(cfg), run_dir / "config.toml")
    distributed.barrier()


def evaluate_initial(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    label: str = "zero_shot",
    overwrite: bool = False,
    wait: bool = False,
) -> RunResult:
    """Evaluate the model as it is before training, on validation and test, into
    ``run_dir/result.json`` (the schema of a trained run; method ``label``): a pre-trained
    backbone with its zero-shot head, or any model's initialisation. No weights are saved,
    no optimiser or procedure is built. A result of the same configuration is reused."""
    validate.check_run(cfg)
    ctx = setup(cfg)  # joins the torchrun process group: only rank 0 locks and writes
    run_dir = Path(run_dir)
    with _run_lock(run_dir, cfg, f"initial:{label}", overwrite=overwrite, wait=wait) as found:
        if found.finished:  # of this configuration (a mismatch is cleared below)
            return read_result(run_dir)
        start = time.time()
        dataset, model = build(cfg, ctx)[:2]
        if (too_large := kept_logits.size_problem(cfg, dataset)) is not None:
            raise ValueError(too_large)
        _start_dir(run_dir, cfg, found, clear=found.state is not identity.State.FRESH)
        history = []
        if len(dataset.val):
            val = evaluate_split(cfg, ctx, model, dataset.val, dataset.num_classes)
            history = [
                EpochRecord(
                    epoch=0,
                    time_s=round(time.time() - start, 3),
                    val_acc=val.overall,
                    val_per_class=val.accuracy.tolist(),
                )
            ]
        result = build_result(cfg, ctx, dataset, model, history, 0)
        result = replace(result, method=label, history=[], train_time_s=0.0, selected_epoch=None)
        kept = kept_logits.run_logits(model, dataset, cfg, ctx) if cfg.train.keep_logits else None
        if ctx.rank == 0:
            if kept is not None:
                save_logits(run_dir, kept, owner_of_result(result))
            storage.save_json(result.to_dict(), run_dir / "result.json")
        distributed.barrier()
        return result


def build_result(
    cfg: RunConfig,
    ctx: Context,
    dataset: mr2_data.Dataset,
    model: nn.Module,
    history: list[EpochRecord],
    selected: int,
) -> RunResult:
    """The one test evaluation of the run and everything result.json holds."""
    test, features = evaluate_with_features(
        model,
        dataset.test,
        dataset.num_classes,
        batch_size=cfg.train.eval_batch_size,
        device=ctx.device,
        amp_dtype=ctx.amp_dtype,
    )
    sizes = {"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)}
    ident = identity.identity(cfg)
    return RunResult(
        method=method_label(cfg),
        seed=cfg.train.seed,
        fingerprint=identity.fingerprint(ident),
        mr2_version=ident["mr2_version"],
        identity=ident,
        config=to_dict(cfg),
        dataset=DatasetInfo(
            dataset.name, dataset.num_classes, dataset.class_names, sizes, dataset.notes
        ),
        selected_epoch=selected,
        val=validation_summary(history, selected),
        test=split_scores(test, dataset.test),
        diagnostics={"test_" + k: v for k, v in features.items()},
        history=history,
        world_size=ctx.world,
        weights=identity.run_weights(cfg),
        train_time_s=history[-1].time_s if history else None,
    )
