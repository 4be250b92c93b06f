"""The one training loop behind every command.

Determinism: model init uses ``train.seed``; the data order and augmentation of epoch e
come from a generator seeded with (seed, e), so a run resumed from the checkpoint of epoch
e continues exactly as the uninterrupted run would (on CPU). Validation is carved from the
training split; the test split is evaluated once, at the end, with the model chosen by
``train.select`` (never chosen on test).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mr2 import data as mr2_data
from mr2 import distributed
from mr2.engine import checkpoint
from mr2.engine.config import RunConfig, to_dict, to_toml
from mr2.engine.evaluate import feature_statistics
from mr2.engine.loop import Context, Loop, prepare
from mr2.engine.progress import JsonlLog, ProgressBar
from mr2.engine.schedule import lr_factor, warmup_steps
from mr2.metrics import disparity_summary


def validation_summary(history: list[dict[str, Any]], epoch: int) -> dict[str, Any] | None:
    """Validation numbers of the selected epoch: what tuning may look at (never test)."""
    record = next((h for h in history if h["epoch"] == epoch), None)
    if record is None or "val_per_class" not in record:
        return None
    s = disparity_summary(record["val_per_class"])
    return {
        "per_class": record["val_per_class"],
        "mean_class": s.mean_class,
        "worst_class": s.worst_class,
        "hard": s.hard,
        "overall": record["val_acc"],
    }


def method_label(cfg: RunConfig) -> str:
    """The method a run stands for: its procedure if not standard, else its loss."""
    return cfg.train.procedure if cfg.train.procedure != "standard" else cfg.loss.name


def loss_internals(loss_fn: nn.Module) -> dict[str, Any]:
    """MR²'s margins gamma_k and spreads ||s_k||^2 (and group DRO / CDB weights)."""
    out: dict[str, Any] = {}
    if hasattr(loss_fn, "margins") and hasattr(loss_fn, "spreads"):
        out["margins"] = loss_fn.margins().tolist()
        out["spreads"] = loss_fn.spreads().tolist()
    for name in ("q", "class_weights"):
        if isinstance(getattr(loss_fn, name, None), torch.Tensor):
            out[name] = getattr(loss_fn, name).tolist()
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


def _loaded(source, batches):
    """(idx, inputs) per batch. Lazily decoded inputs (image files) are loaded one batch
    ahead in a background thread, so decoding overlaps the training step."""
    if isinstance(source, torch.Tensor):
        yield from ((idx, source[idx]) for idx in batches)
        return
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for idx in batches:
            future = pool.submit(source.__getitem__, idx)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (idx, future)
        if pending is not None:
            yield pending[0], pending[1].result()


def train_epoch(loop: Loop, epoch: int, show_progress: bool | None) -> tuple[float, float]:
    """One pass over the training split; returns (mean loss, accuracy) over all processes."""
    cfg, ctx, train_split = loop.cfg, loop.ctx, loop.dataset.train
    loop.net.train()
    loop.loss_fn.train()
    steps = loop.steps_per_epoch
    total, warm = steps * cfg.train.epochs, warmup_steps(cfg.optim, steps)
    bar = ProgressBar(
        steps,
        f"epoch {epoch + 1}/{cfg.train.epochs}",
        enabled=show_progress if ctx.rank == 0 else False,
    )
    aug = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch + 7)
    sums = torch.zeros(3, device=ctx.device)  # loss * n, correct, n
    batches = _batches(len(train_split), cfg.train.batch_size, cfg.train.seed, epoch, ctx)
    for step, (idx, x) in enumerate(_loaded(train_split.x, batches)):
        if cfg.data.augment:
            x = mr2_data.random_crop_flip(x, aug)
        x, y = x.to(ctx.device, non_blocking=True), train_split.y[idx].to(ctx.device)
        factor = lr_factor(epoch * steps + step, total, warm, cfg.optim.schedule)
        for group in loop.opt.param_groups:
            group["lr"] = cfg.optim.lr * factor
        with loop.autocast():
            logits, features = loop.net(x)
            weights = loop.proc.batch_weights(epoch, idx, x, y, logits.detach())
            loss = loop.loss_fn(logits, features, y, sample_weight=weights)
        loop.opt.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()
        if cfg.optim.grad_clip > 0:
            loop.scaler.unscale_(loop.opt)
            nn.utils.clip_grad_norm_(loop.model.parameters(), cfg.optim.grad_clip)
        loop.scaler.step(loop.opt)
        loop.scaler.update()
        sums += torch.stack(
            [
                loss.detach() * len(y),
                (logits.detach().argmax(1) == y).sum(),
                torch.tensor(len(y), device=ctx.device),
            ]
        ).float()
        if bar.enabled:
            bar.update(loss=float(loss), acc=float(sums[1] / sums[2]))
    bar.close()
    sums = distributed.all_reduce_sum(sums)
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def train(
    cfg: RunConfig, run_dir: str | Path, *, resume: bool = True, show_progress: bool | None = None
) -> dict[str, Any]:
    """Train one run into ``run_dir`` (config.toml, log.jsonl, checkpoint.pt, final.pt,
    result.json) and return the result dict. With ``resume``, continue from an existing
    checkpoint; a run whose result.json exists is returned as is."""
    run_dir = Path(run_dir)
    result_path = run_dir / "result.json"
    if resume and result_path.exists():
        return json.loads(result_path.read_text())
    loop = prepare(cfg, run_dir, resume)
    ctx = loop.ctx
    log = JsonlLog(run_dir / "log.jsonl")
    ckpt_path = run_dir / "checkpoint.pt"
    start, best = 0, {"score": -1.0, "epoch": -1, "state": None}
    history: list[dict[str, Any]] = []
    if ctx.rank == 0:
        checkpoint.save_text(to_toml(cfg), run_dir / "config.toml")
    if resume and ckpt_path.exists():
        state = checkpoint.load_torch(ckpt_path)
        loop.restore(state)
        start, best, history = state["epoch"] + 1, state["best"], state["history"]
        if ctx.rank == 0:  # the log is rebuilt from the checkpoint: epochs after it are gone
            log.rewrite(history)
    elif ctx.rank == 0 and log.path.exists():
        log.path.unlink()
    distributed.barrier()

    t0 = time.time() - (history[-1]["time_s"] if history else 0.0)  # cumulative over resumes
    for epoch in range(start, cfg.train.epochs):
        train_loss, train_acc = train_epoch(loop, epoch, show_progress)
        val = loop.evaluate(loop.dataset.val) if len(loop.dataset.val) else None
        val_score = float(torch.nanmean(val.accuracy)) if val is not None else float("nan")
        if val is not None and hasattr(loop.loss_fn, "update_difficulty"):
            loop.loss_fn.update_difficulty(val.accuracy)  # CDB: from validation, never test
        if cfg.train.select == "best_val" and val_score > best["score"]:
            weights = {k: v.detach().cpu().clone() for k, v in loop.model.state_dict().items()}
            best = {"score": val_score, "epoch": epoch, "state": weights}
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "lr": loop.opt.param_groups[0]["lr"],
            "val_acc": val.overall if val is not None else None,
            "val_mean_class": val_score,
            "time_s": round(time.time() - t0, 3),
            **loss_internals(loop.loss_fn),
        }
        if val is not None:
            record["val_per_class"] = val.accuracy.tolist()
        history.append(record)
        if ctx.rank == 0:  # checkpoint first: a logged epoch is always a saved epoch
            checkpoint.save_torch(
                {**loop.state(), "epoch": epoch, "best": best, "history": history}, ckpt_path
            )
            log.write(record)
            if show_progress is not False:
                print(
                    f"epoch {epoch + 1}/{cfg.train.epochs} loss {train_loss:.4f} "
                    f"train acc {train_acc:.4f} val acc {record['val_acc']}",
                    flush=True,
                )
        distributed.barrier()

    if cfg.train.select == "best_val":
        loop.model.load_state_dict(best["state"])
    selected = best["epoch"] if cfg.train.select == "best_val" else cfg.train.epochs - 1
    result = build_result(loop, history, selected)
    if ctx.rank == 0:
        checkpoint.save_torch(
            {"model": loop.model.state_dict(), "loss": loop.loss_fn.state_dict()},
            run_dir / "final.pt",
        )
        checkpoint.save_json(result, result_path)
    distributed.barrier()
    return result


def evaluate_initial(cfg: RunConfig, run_dir: str | Path, *, label: str = "zero_shot") -> dict:
    """Evaluate the model as it is before training, on validation and test, into
    ``run_dir/result.json`` (the schema of a trained run; method ``label``): a pre-trained
    backbone with its zero-shot head, or any model's initialisation. No weights are saved.
    A result.json already there is returned as is."""
    run_dir = Path(run_dir)
    result_path = run_dir / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    start = time.time()
    loop = prepare(cfg, run_dir, resume=False)
    history = []
    if len(loop.dataset.val):
        val = loop.evaluate(loop.dataset.val)
        history = [
            {
                "epoch": 0,
                "val_acc": val.overall,
                "val_per_class": val.accuracy.tolist(),
                "time_s": round(time.time() - start, 3),
            }
        ]
    result = build_result(loop, history, 0)
    result.update(method=label, history=[], train_time_s=0.0, selected_epoch=None)
    if loop.ctx.rank == 0:
        checkpoint.save_text(to_toml(cfg), run_dir / "config.toml")
        checkpoint.save_json(result, result_path)
    distributed.barrier()
    return result


def build_result(loop: Loop, history: list[dict[str, Any]], selected: int) -> dict[str, Any]:
    """The one test evaluation of the run and everything result.json holds."""
    cfg, dataset = loop.cfg, loop.dataset
    test = loop.evaluate(dataset.test)
    features = feature_statistics(
        loop.model,
        dataset.test,
        dataset.num_classes,
        batch_size=cfg.train.eval_batch_size,
        device=loop.ctx.device,
    )
    sizes = {"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)}
    return {
        "schema": 1,
        "method": method_label(cfg),
        "seed": cfg.train.seed,
        "config": to_dict(cfg),
        "dataset": {
            "name": dataset.name,
            "num_classes": dataset.num_classes,
            "class_names": dataset.class_names,
            "sizes": sizes,
            "notes": dataset.notes,
        },
        "selected_epoch": selected,
        "val": validation_summary(history, selected),
        "test": {
            "overall": test.overall,
            "per_class": test.accuracy.tolist(),
            "support": test.support.tolist(),
            "confusion": test.confusion.tolist(),
            "summary": disparity_summary(test.accuracy, class_counts=test.support).as_dict(),
        },
        "diagnostics": {"test_" + k: v for k, v in features.items()},
        "history": history,
        "world_size": loop.ctx.world,
        "train_time_s": history[-1]["time_s"] if history else None,
    }
