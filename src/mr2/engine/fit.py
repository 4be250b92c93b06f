"""The one training loop: epochs of seeded batches, the optimiser step, validation,
checkpoints and logs. ``fit`` trains a ``Run`` (run.py) in place; train.py wraps it into a
run directory and a result.

Determinism: model init uses ``train.seed``; the data order and augmentation of epoch e
come from a generator seeded with (seed, e), so a run resumed from the checkpoint of epoch
e continues exactly as the uninterrupted run would (on CPU).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mr2 import _checks, distributed
from mr2 import data as mr2_data
from mr2.engine import identity
from mr2.engine.config import RunConfig, to_dict
from mr2.engine.context import Context
from mr2.engine.loggers import Loggers
from mr2.engine.progress import JsonlLog, StepProgress
from mr2.engine.run import Run
from mr2.engine.run_warnings import rep_gradient_ratio
from mr2.engine.schedule import lr_factor, warmup_steps
from mr2.losses.base import ClassLoss, internals_of
from mr2.records import storage
from mr2.records.result import EpochRecord


def loss_internals(loss_fn: nn.Module, num_classes: int) -> dict[str, Any]:
    """What the loss records per epoch as ``EpochRecord`` fields (``ClassLoss.internals``:
    MR²'s margins and spreads, group DRO's q, CDB's class weights; any other name in
    ``series``)."""
    got = internals_of(loss_fn, num_classes)
    known = {k: v for k, v in got.items() if k in EpochRecord.LOSS_FIELDS}
    return {**known, "series": {k: v for k, v in got.items() if k not in known} or None}


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
    when ``Run.resident`` moved it there, the indices copied there once); lazily decoded
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


def _step(run: Run, epoch: int, idx, x, y, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step at learning rate ``lr``; (loss, logits) of the batch."""
    for group in run.opt.param_groups:
        group["lr"] = lr
    with run.autocast():
        logits, features = run.net(x)
        weights = run.proc.batch_weights(epoch, idx, x, y, logits.detach())
        loss = run.train_loss(logits, features, y, sample_weight=weights)
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.cfg.optim.grad_clip > 0:
        run.scaler.unscale_(run.opt)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.optim.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    return loss, logits


class _Tally:
    """The epoch's step losses and correct predictions, kept on the device: recording them
    never waits for the GPU; reading them (``check``, at log steps and at the end of the
    epoch) does, and names the first step whose loss was NaN or Inf."""

    def __init__(self, steps: int, device: torch.device) -> None:
        self.losses = torch.zeros(steps, device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.count = 0

    def add(self, step: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.losses[step] = loss.detach()
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.count += len(y)

    def check(self, epoch: int, upto: int) -> None:
        """Raise if a loss of steps 0 .. ``upto`` was NaN or Inf, naming the first."""
        losses = self.losses[: upto + 1]
        if not math.isfinite(float(losses.sum())):
            step = int(torch.isfinite(losses).logical_not().nonzero()[0, 0])
            raise FloatingPointError(
                f"the training loss was NaN or Inf at epoch {epoch + 1}, batch {step + 1} of "
                f"{len(self.losses)}{_checks.DIVERGED}"
            )


def train_epoch(
    run: Run, epoch: int, show_progress: bool | None, loggers: Loggers | None = None
) -> tuple[float, float]:
    """One pass over the training split; returns (mean loss, accuracy) over all processes.
    Every ``train.log_every`` steps the loss, accuracy and learning rate go to the progress
    output and the run's loggers (one host sync, which also checks that no loss so far was
    NaN or Inf); otherwise the loop never syncs: the losses run without their per-call
    checks (labels were checked once, before training) and a non-finite loss is found from
    the on-device tally."""
    cfg, ctx = run.cfg, run.ctx
    train_x, train_y = run.resident
    run.net.train()
    run.loss_fn.train()
    steps = run.steps_per_epoch
    total, warm = steps * cfg.train.epochs, warmup_steps(cfg.optim, steps)
    bar = StepProgress(
        steps,
        f"epoch {epoch + 1}/{cfg.train.epochs}",
        every=cfg.train.log_every,
        enabled=show_progress if ctx.rank == 0 else False,
    )
    logging = loggers is not None and bool(loggers.loggers)
    aug = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch + 7)
    tally = _Tally(steps, ctx.device)
    batches = _batches(len(train_y), cfg.train.batch_size, cfg.train.seed, epoch, ctx)
    for step, (idx, x, y) in enumerate(_loaded(train_x, train_y, batches)):
        x = _model_inputs(cfg, x.to(ctx.device, non_blocking=True), aug)
        y = y.to(ctx.device)
        factor = lr_factor(epoch * steps + step, total, warm, cfg.optim.schedule)
        loss, logits = _step(run, epoch, idx, x, y, cfg.optim.lr * factor)
        tally.add(step, loss, logits, y)
        bar.tick()
        global_step = epoch * steps + step + 1
        log_now = logging and global_step % cfg.train.log_every == 0
        if bar.due(step) or log_now:
            tally.check(epoch, step)
            lr = run.opt.param_groups[0]["lr"]
            value, acc = loss.detach().item(), tally.correct.item() / tally.count
            if bar.due(step):
                bar.report(step, loss=value, acc=acc, lr=lr)
            if log_now:
                loggers.step(global_step, {"loss": value, "lr": lr})  # type: ignore[union-attr]
    bar.close()
    tally.check(epoch, steps - 1)
    local = tally.losses.sum() * (tally.count / steps)  # equal batches: sum of loss * n
    sums = torch.stack([local, tally.correct.float(), tally.losses.new_tensor(tally.count)])
    sums = distributed.all_reduce_sum(sums)
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


@dataclass
class _Best:
    """The best validation score so far, its epoch and weights (``train.select = best_val``)."""

    score: float = -1.0
    epoch: int = -1
    state: dict[str, torch.Tensor] | None = None


def _check_owner(path: Path, stored: str | None, owner: str) -> None:
    """A checkpoint of another run (copied here) is refused; checkpoints of an older mr2
    carry no fingerprint and are taken as the run's own."""
    if stored is not None and stored != owner:
        raise storage.CorruptFileError(
            f"{path} belongs to another run (fingerprint {stored[:12]}..., this run's is "
            f"{owner[:12]}...): copied from elsewhere? {storage.RESTART}"
        )


def fit(
    run: Run, run_dir: Path, *, resume: bool, show_progress: bool | None
) -> tuple[list[EpochRecord], int]:
    """Train ``run`` for its epochs (from its checkpoint when ``resume``), checkpointing and
    logging every epoch; leave the selected epoch's weights in the model. Returns the
    history and the selected epoch."""
    cfg, ctx = run.cfg, run.ctx
    log = JsonlLog(run_dir / "log.jsonl")
    ckpt_path = run_dir / "checkpoint.pt"
    start, best = 0, _Best()
    history: list[EpochRecord] = []
    owner = identity.fingerprint(identity.identity(cfg))  # checkpoints name their run
    if resume and ckpt_path.exists():
        state = storage.load_torch(ckpt_path)
        _check_owner(ckpt_path, state.pop("run_fingerprint", None), owner)
        run.restore(state)
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
            record, best = _epoch(run, epoch, best, t0, show_progress, loggers)
            history.append(record)
            if ctx.rank == 0:  # checkpoint first: a logged epoch is always a saved epoch
                rows = [h.to_dict() for h in history]
                best_state = {"score": best.score, "epoch": best.epoch, "state": best.state}
                checkpoint = {"epoch": epoch, "best": best_state, "history": rows}
                checkpoint["run_fingerprint"] = owner
                storage.save_torch({**run.state(), **checkpoint}, ckpt_path)
                log.write(record.to_dict())
                loggers.epoch(epoch, record, run.dataset.class_names)
                if show_progress is not False:
                    print(epoch_line(record, cfg.train.epochs), flush=True)
            distributed.barrier()
    finally:
        loggers.close()

    if cfg.train.select == "best_val" and best.state is not None:
        run.model.load_state_dict(best.state)
    return history, best.epoch if cfg.train.select == "best_val" else cfg.train.epochs - 1


def _epoch(
    run: Run, epoch: int, best: _Best, t0: float, show_progress, loggers: Loggers
) -> tuple[EpochRecord, _Best]:
    """Train one epoch, validate; (the epoch's history record, the best-so-far state)."""
    cfg = run.cfg
    train_loss, train_acc = train_epoch(run, epoch, show_progress, loggers)
    val = run.evaluate(run.dataset.val) if len(run.dataset.val) else None
    val_score = float(torch.nanmean(val.accuracy)) if val is not None else float("nan")
    if val is not None and isinstance(run.loss_fn, ClassLoss):
        run.loss_fn.on_validation(val.accuracy)  # CDB's weights: from validation, never test
    if cfg.train.select == "best_val" and val_score > best.score:
        weights = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
        best = _Best(val_score, epoch, weights)
    record = EpochRecord(
        epoch=epoch,
        time_s=round(time.time() - t0, 3),
        train_loss=train_loss,
        train_acc=train_acc,
        lr=run.opt.param_groups[0]["lr"],
        val_acc=val.overall if val is not None else None,
        val_mean_class=val_score,
        val_per_class=val.accuracy.tolist() if val is not None else None,
        rep_grad_ratio=rep_gradient_ratio(run),
        **loss_internals(run.loss_fn, run.dataset.num_classes),
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
