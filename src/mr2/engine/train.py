"""The one training loop behind every command.

Determinism: model init uses ``train.seed``; the data order and augmentation of epoch e
come from a generator seeded with (seed, e), so a run resumed from the checkpoint of epoch
e continues exactly as the uninterrupted run would (on CPU). Validation is carved from the
training split; the test split is evaluated once, at the end, with the model chosen by
``train.select`` (never chosen on test).
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from mr2 import data as mr2_data
from mr2 import distributed, io
from mr2.engine import identity, validate
from mr2.engine.config import RunConfig, to_dict, to_toml
from mr2.engine.context import Context, setup
from mr2.engine.evaluate import evaluate, feature_statistics
from mr2.engine.loggers import Loggers
from mr2.engine.loop import Loop, build, prepare
from mr2.engine.progress import JsonlLog, StepProgress
from mr2.engine.schedule import lr_factor, warmup_steps
from mr2.losses import MR2Loss
from mr2.losses.cdb import CDBLoss
from mr2.metrics import disparity_summary
from mr2.result import (
    DatasetInfo,
    EpochRecord,
    RunResult,
    SplitScores,
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


def loss_internals(loss_fn: nn.Module) -> dict[str, list[float]]:
    """MR²'s margins gamma_k and spreads ||s_k||^2 (and group DRO / CDB weights)."""
    out: dict[str, list[float]] = {}
    if isinstance(loss_fn, MR2Loss):
        out["margins"] = loss_fn.margins().tolist()
        out["spreads"] = loss_fn.spreads().tolist()
    for name in ("q", "class_weights"):
        value = getattr(loss_fn, name, None)
        if isinstance(value, torch.Tensor):
            out[name] = value.tolist()
    return out


def _batches(n: int, batch: int, seed: int, epoch: int, ctx: Context):
    """Global batches of a seeded permutation (last incomplete batch dropped, so every rank
    takes the same number of steps); rank r gets its contiguous share of each batch."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g)
    local = batch // ctx.world
    for i in range(n // batch):
        chunk = order[i * batch : (i + 1) * batch]
        yield chunk[ctx.rank * local : (ctx.rank + 1) * local]


def _loaded(source, labels: torch.Tensor, batches):
    """(idx, inputs, labels) per batch. A tensor split is indexed where it lives (on the GPU
    when ``Loop.resident`` moved it there, the indices copied there once); lazily decoded
    inputs (image files) are loaded one batch ahead in a background thread, so decoding
    overlaps the training step. ``idx`` stays on the CPU (procedures index their tables)."""
    if isinstance(source, torch.Tensor):
        for idx in batches:
            at = idx.to(source.device)
            yield idx, source[at], labels[at]
        return
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for idx in batches:
            future = pool.submit(source.__getitem__, idx)
            if pending is not None:
                yield pending[0], pending[1].result(), labels[pending[0]]
            pending = (idx, future)
        if pending is not None:
            yield pending[0], pending[1].result(), labels[pending[0]]


def _model_inputs(cfg: RunConfig, x: torch.Tensor, aug: torch.Generator) -> torch.Tensor:
    """A batch as the model takes it: augmented, and channels-last if asked."""
    if cfg.data.augment:
        x = mr2_data.random_crop_flip(x, aug)
    if cfg.data.autoaugment:
        x = mr2_data.auto_augment(x, aug)
    if cfg.train.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)  # no copy when it already is
    return x


def _step(loop: Loop, epoch: int, idx, x, y, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step at learning rate ``lr``; (loss, logits) of the batch."""
    for group in loop.opt.param_groups:
        group["lr"] = lr
    with loop.autocast():
        logits, features = loop.net(x)
        weights = loop.proc.batch_weights(epoch, idx, x, y, logits.detach())
        loss = loop.loss_fn(logits, features, y, sample_weight=weights)
    loop.opt.zero_grad(set_to_none=True)
    loop.scaler.scale(loss).backward()
    if loop.cfg.optim.grad_clip > 0:
        loop.scaler.unscale_(loop.opt)
        nn.utils.clip_grad_norm_(loop.model.parameters(), loop.cfg.optim.grad_clip)
    loop.scaler.step(loop.opt)
    loop.scaler.update()
    return loss, logits


def train_epoch(
    loop: Loop, epoch: int, show_progress: bool | None, loggers: Loggers | None = None
) -> tuple[float, float]:
    """One pass over the training split; returns (mean loss, accuracy) over all processes.
    Every ``train.log_every`` steps the loss, accuracy and learning rate go to the progress
    output and the run's loggers (one host sync); otherwise the loop never syncs."""
    cfg, ctx = loop.cfg, loop.ctx
    train_x, train_y = loop.resident
    loop.net.train()
    loop.loss_fn.train()
    steps = loop.steps_per_epoch
    total, warm = steps * cfg.train.epochs, warmup_steps(cfg.optim, steps)
    bar = StepProgress(
        steps,
        f"epoch {epoch + 1}/{cfg.train.epochs}",
        every=cfg.train.log_every,
        enabled=show_progress if ctx.rank == 0 else False,
    )
    logging = loggers is not None and bool(loggers.loggers)
    aug = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch + 7)
    sums = torch.zeros(3, device=ctx.device)  # loss * n, correct, n
    batches = _batches(len(train_y), cfg.train.batch_size, cfg.train.seed, epoch, ctx)
    for step, (idx, x, y) in enumerate(_loaded(train_x, train_y, batches)):
        x = _model_inputs(cfg, x.to(ctx.device, non_blocking=True), aug)
        y = y.to(ctx.device)
        factor = lr_factor(epoch * steps + step, total, warm, cfg.optim.schedule)
        loss, logits = _step(loop, epoch, idx, x, y, cfg.optim.lr * factor)
        sums += torch.stack(
            [
                loss.detach() * len(y),
                (logits.detach().argmax(1) == y).sum(),
                torch.tensor(len(y), device=ctx.device),
            ]
        ).float()
        bar.tick()
        global_step = epoch * steps + step + 1
        log_now = logging and global_step % cfg.train.log_every == 0
        if bar.due(step) or log_now:
            lr = loop.opt.param_groups[0]["lr"]
            value, acc = loss.detach().item(), (sums[1] / sums[2]).item()
            if bar.due(step):
                bar.report(step, loss=value, acc=acc, lr=lr)
            if log_now:
                loggers.step(global_step, {"loss": value, "lr": lr})  # type: ignore[union-attr]
    bar.close()
    sums = distributed.all_reduce_sum(sums)
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


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
    setup(cfg)  # joins the torchrun process group: only rank 0 locks and writes
    run_dir = Path(run_dir)
    with _run_lock(run_dir, cfg, "train", overwrite=overwrite, wait=wait) as found:
        if found.finished and resume:  # a finished run of this configuration: reused
            return read_result(run_dir)
        loop = prepare(cfg, run_dir, resume, train_run=train)
        fresh = not resume or found.state is not identity.State.MATCH
        loop.proc.resume = not fresh
        _start_dir(run_dir, cfg, found, clear=fresh and found.state is not identity.State.FRESH)
        loop.proc.prepare()
        return _fit(loop, run_dir, resume=not fresh, show_progress=show_progress)


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
        io.remove_stale_tmp(run_dir)
        identity.write_record(run_dir, found)
        io.save_text(to_toml(cfg), run_dir / "config.toml")
    distributed.barrier()


@dataclass
class _Best:
    """The best validation score so far, its epoch and weights (``train.select = best_val``)."""

    score: float = -1.0
    epoch: int = -1
    state: dict[str, torch.Tensor] | None = None


def _fit(loop: Loop, run_dir: Path, *, resume: bool, show_progress: bool | None) -> RunResult:
    cfg, ctx = loop.cfg, loop.ctx
    log = JsonlLog(run_dir / "log.jsonl")
    ckpt_path = run_dir / "checkpoint.pt"
    start, best = 0, _Best()
    history: list[EpochRecord] = []
    if resume and ckpt_path.exists():
        state = io.load_torch(ckpt_path)
        loop.restore(state)
        start, best = state["epoch"] + 1, _Best(**state["best"])
        history = [EpochRecord.from_dict(h, ckpt_path) for h in state["history"]]
        if ctx.rank == 0:  # the log is rebuilt from the checkpoint: epochs after it are gone
            log.rewrite([h.to_dict() for h in history])
    elif ctx.rank == 0 and log.path.exists():
        log.path.unlink()
    distributed.barrier()

    t0 = time.time() - (history[-1].time_s if history else 0.0)  # cumulative over resumes
    names = cfg.train.loggers if ctx.rank == 0 else []
    loggers = Loggers(names, run_dir, to_dict(cfg), resume=resume and start > 0)
    try:
        for epoch in range(start, cfg.train.epochs):
            record, best = _epoch(loop, epoch, best, t0, show_progress, loggers)
            history.append(record)
            if ctx.rank == 0:  # checkpoint first: a logged epoch is always a saved epoch
                rows = [h.to_dict() for h in history]
                checkpoint = {"epoch": epoch, "best": asdict(best), "history": rows}
                io.save_torch({**loop.state(), **checkpoint}, ckpt_path)
                log.write(record.to_dict())
                loggers.epoch(epoch, record, loop.dataset.class_names)
                if show_progress is not False:
                    print(epoch_line(record, cfg.train.epochs), flush=True)
            distributed.barrier()
    finally:
        loggers.close()

    if cfg.train.select == "best_val" and best.state is not None:
        loop.model.load_state_dict(best.state)
    selected = best.epoch if cfg.train.select == "best_val" else cfg.train.epochs - 1
    result = build_result(cfg, ctx, loop.dataset, loop.model, history, selected)
    if ctx.rank == 0:
        io.save_torch(
            {"model": loop.model.state_dict(), "loss": loop.loss_fn.state_dict()},
            run_dir / "final.pt",
        )
        io.save_json(result.to_dict(), run_dir / "result.json")
    distributed.barrier()
    return result


def _epoch(
    loop: Loop, epoch: int, best: _Best, t0: float, show_progress, loggers: Loggers
) -> tuple[EpochRecord, _Best]:
    """Train one epoch, validate; (the epoch's history record, the best-so-far state)."""
    cfg = loop.cfg
    train_loss, train_acc = train_epoch(loop, epoch, show_progress, loggers)
    val = loop.evaluate(loop.dataset.val) if len(loop.dataset.val) else None
    val_score = float(torch.nanmean(val.accuracy)) if val is not None else float("nan")
    if val is not None and isinstance(loop.loss_fn, CDBLoss):
        loop.loss_fn.update_difficulty(val.accuracy)  # CDB: from validation, never test
    if cfg.train.select == "best_val" and val_score > best.score:
        weights = {k: v.detach().cpu().clone() for k, v in loop.model.state_dict().items()}
        best = _Best(val_score, epoch, weights)
    record = EpochRecord(
        epoch=epoch,
        time_s=round(time.time() - t0, 3),
        train_loss=train_loss,
        train_acc=train_acc,
        lr=loop.opt.param_groups[0]["lr"],
        val_acc=val.overall if val is not None else None,
        val_mean_class=val_score,
        val_per_class=val.accuracy.tolist() if val is not None else None,
        **loss_internals(loop.loss_fn),
    )
    return record, best


def epoch_line(record: EpochRecord, epochs: int) -> str:
    """One line per epoch, every number formatted (validation shown only when there is one)."""
    val = ""
    if record.val_acc is not None:
        val = f" val acc {record.val_acc:.4f} val mean-class {record.val_mean_class:.4f}"
    return (
        f"epoch {record.epoch + 1}/{epochs} loss {record.train_loss:.4f} "
        f"train acc {record.train_acc:.4f}{val} lr {record.lr:.3g} "
        f"({record.time_s:.1f} s)"
    )


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
    setup(cfg)  # joins the torchrun process group: only rank 0 locks and writes
    run_dir = Path(run_dir)
    with _run_lock(run_dir, cfg, f"initial:{label}", overwrite=overwrite, wait=wait) as found:
        if found.finished:  # of this configuration (a mismatch is cleared below)
            return read_result(run_dir)
        start = time.time()
        ctx = setup(cfg)
        dataset, model = build(cfg, ctx)[:2]
        _start_dir(run_dir, cfg, found, clear=found.state is not identity.State.FRESH)
        history = []
        if len(dataset.val):
            val = _evaluate(cfg, ctx, model, dataset.val, dataset.num_classes)
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
        if ctx.rank == 0:
            io.save_json(result.to_dict(), run_dir / "result.json")
        distributed.barrier()
        return result


def _evaluate(cfg: RunConfig, ctx: Context, model: nn.Module, split, num_classes: int):
    return evaluate(
        model,
        split,
        num_classes,
        batch_size=cfg.train.eval_batch_size,
        device=ctx.device,
        amp_dtype=ctx.amp_dtype,
    )


def build_result(
    cfg: RunConfig,
    ctx: Context,
    dataset: mr2_data.Dataset,
    model: nn.Module,
    history: list[EpochRecord],
    selected: int,
) -> RunResult:
    """The one test evaluation of the run and everything result.json holds."""
    test = _evaluate(cfg, ctx, model, dataset.test, dataset.num_classes)
    features = feature_statistics(
        model,
        dataset.test,
        dataset.num_classes,
        batch_size=cfg.train.eval_batch_size,
        device=ctx.device,
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
        test=SplitScores(
            test.overall,
            test.accuracy.tolist(),
            test.support.tolist(),
            test.confusion.tolist(),
            disparity_summary(test.accuracy, class_counts=test.support).as_dict(),
        ),
        diagnostics={"test_" + k: v for k, v in features.items()},
        history=history,
        world_size=ctx.world,
        train_time_s=history[-1].time_s if history else None,
    )
