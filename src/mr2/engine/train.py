"""The one training loop behind every command.

Determinism: model init uses ``train.seed``; the data order and augmentation of epoch e
come from a generator seeded with (seed, e), so a run resumed from the checkpoint of epoch
e continues exactly as the uninterrupted run would (on CPU). Validation is carved from the
training split; the test split is evaluated once, at the end, with the model chosen by
``train.select`` (never chosen on test).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mr2 import data as mr2_data
from mr2 import distributed, losses, models
from mr2.engine import checkpoint, procedures
from mr2.engine.config import RunConfig, to_dict, to_toml
from mr2.engine.evaluate import evaluate, feature_statistics
from mr2.engine.progress import JsonlLog, ProgressBar
from mr2.engine.schedule import lr_factor, make_optimizer, warmup_steps
from mr2.metrics import disparity_summary


@dataclass
class Context:
    device: torch.device
    amp_dtype: torch.dtype | None
    world: int
    rank: int


def setup(cfg: RunConfig) -> Context:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    kind = cfg.train.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device = 'cuda' but no CUDA device is available")
    distributed.init_from_env(kind)
    device = (
        torch.device(kind, torch.cuda.current_device()) if kind == "cuda" else torch.device("cpu")
    )
    amp = (torch.float16 if kind == "cuda" else torch.bfloat16) if cfg.train.amp else None
    return Context(device, amp, distributed.world_size(), distributed.rank())


def load_data(cfg: RunConfig) -> mr2_data.Dataset:
    d = cfg.data
    options = {
        "data_dir": d.data_dir,
        "path": d.path,
        "val_fraction": d.val_fraction,
        "seed": d.split_seed,
        "train_subset": d.train_subset,
        "allow_download": d.allow_download,
    }
    accepted = mr2_data.options(d.name)
    for key in ("data_dir", "path"):
        if options[key] and key not in accepted:
            raise ValueError(f"data.{key} is set but dataset {d.name!r} does not use it")
    options = {k: v for k, v in options.items() if k in accepted}
    return mr2_data.load(d.name, **options, **d.options)


def build(cfg: RunConfig, dataset: mr2_data.Dataset, ctx: Context):
    torch.manual_seed(cfg.train.seed)
    model = models.create(
        cfg.model.name, dataset.input_shape, dataset.num_classes, **cfg.model.options
    ).to(ctx.device)
    loss_fn = losses.create(cfg.loss.name, num_classes=dataset.num_classes, **cfg.loss.options).to(
        ctx.device
    )
    return model, loss_fn


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


def train(
    cfg: RunConfig, run_dir: str | Path, *, resume: bool = True, show_progress: bool | None = None
) -> dict[str, Any]:
    """Train one run into ``run_dir`` (config.toml, log.jsonl, checkpoint.pt, result.json)
    and return the result dict. With ``resume``, continue from an existing checkpoint;
    a run whose result.json exists is returned as is."""
    run_dir = Path(run_dir)
    result_path = run_dir / "result.json"
    if resume and result_path.exists():
        import json

        return json.loads(result_path.read_text())
    ctx = setup(cfg)
    if cfg.train.batch_size % ctx.world:
        raise ValueError(
            f"train.batch_size {cfg.train.batch_size} is not divisible by the {ctx.world} processes"
        )
    dataset = load_data(cfg)
    if len(dataset.train) < cfg.train.batch_size:
        raise ValueError(
            f"only {len(dataset.train)} training samples for batch size {cfg.train.batch_size}"
        )
    model, loss_fn = build(cfg, dataset, ctx)
    net: nn.Module = model
    if ctx.world > 1:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    opt = make_optimizer(model, cfg.optim)
    proc = procedures.create(
        cfg.train.procedure, cfg, dataset, ctx.device, run_dir, **cfg.train.procedure_options
    )
    if proc.single_process_only and ctx.world > 1:
        raise ValueError(f"procedure {cfg.train.procedure!r} runs on one process only")
    proc.bind(opt)
    proc.resume = resume
    proc.prepare()
    steps_per_epoch = len(dataset.train) // cfg.train.batch_size
    total_steps = steps_per_epoch * cfg.train.epochs
    warm = warmup_steps(cfg.optim, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=ctx.amp_dtype == torch.float16)
    log = JsonlLog(run_dir / "log.jsonl")
    ckpt_path = run_dir / "checkpoint.pt"
    start, best = 0, {"score": -1.0, "epoch": -1, "state": None}
    history: list[dict[str, Any]] = []
    if ctx.rank == 0:
        checkpoint.save_text(to_toml(cfg), run_dir / "config.toml")
    if resume and ckpt_path.exists():
        state = checkpoint.load_torch(ckpt_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        loss_fn.load_state_dict(state["loss"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        proc.load_state_dict(state["procedure"])
        start, best, history = state["epoch"] + 1, state["best"], state["history"]
        if ctx.rank == 0:  # the log is rebuilt from the checkpoint: epochs after it are gone
            log.rewrite(history)
    elif ctx.rank == 0 and log.path.exists():
        log.path.unlink()
    distributed.barrier()

    t0 = time.time()
    for epoch in range(start, cfg.train.epochs):
        net.train()
        loss_fn.train()
        bar = ProgressBar(
            steps_per_epoch,
            f"epoch {epoch + 1}/{cfg.train.epochs}",
            enabled=show_progress if ctx.rank == 0 else False,
        )
        aug = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch + 7)
        sum_loss = torch.zeros((), device=ctx.device)
        correct = torch.zeros((), device=ctx.device)
        seen = 0
        for step, idx in enumerate(
            _batches(len(dataset.train), cfg.train.batch_size, cfg.train.seed, epoch, ctx)
        ):
            x = dataset.train.x[idx]
            if cfg.data.augment:
                x = mr2_data.random_crop_flip(x, aug)
            x, y = x.to(ctx.device, non_blocking=True), dataset.train.y[idx].to(ctx.device)
            for group in opt.param_groups:
                group["lr"] = cfg.optim.lr * lr_factor(
                    epoch * steps_per_epoch + step, total_steps, warm, cfg.optim.schedule
                )
            with torch.autocast(
                ctx.device.type,
                dtype=ctx.amp_dtype or torch.float32,
                enabled=ctx.amp_dtype is not None,
            ):
                logits, features = net(x)
                weights = proc.batch_weights(epoch, idx, x, y, logits.detach())
                loss = loss_fn(logits, features, y, sample_weight=weights)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            sum_loss += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if bar.enabled:
                bar.update(loss=float(loss), acc=float(correct) / seen)
        bar.close()
        stats = distributed.all_reduce_sum(
            torch.stack([sum_loss, correct.float(), torch.tensor(float(seen), device=ctx.device)])
        )
        val = (
            evaluate(
                model,
                dataset.val,
                dataset.num_classes,
                batch_size=cfg.train.eval_batch_size,
                device=ctx.device,
                amp_dtype=ctx.amp_dtype,
            )
            if len(dataset.val)
            else None
        )
        val_score = float(torch.nanmean(val.accuracy)) if val is not None else float("nan")
        if val is not None and hasattr(loss_fn, "update_difficulty"):
            loss_fn.update_difficulty(val.accuracy)  # CDB: refreshed from validation, never test
        if cfg.train.select == "best_val" and val_score > best["score"]:
            best = {
                "score": val_score,
                "epoch": epoch,
                "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            }
        record = {
            "epoch": epoch,
            "train_loss": float(stats[0] / stats[2]),
            "train_acc": float(stats[1] / stats[2]),
            "lr": opt.param_groups[0]["lr"],
            "val_acc": val.overall if val is not None else None,
            "val_mean_class": val_score,
            "time_s": round(time.time() - t0, 3),
            **loss_internals(loss_fn),
        }
        if val is not None:
            record["val_per_class"] = val.accuracy.tolist()
        history.append(record)
        if ctx.rank == 0:  # checkpoint first: a logged epoch is always a saved epoch
            checkpoint.save_torch(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "loss": loss_fn.state_dict(),
                    "scaler": scaler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "epoch": epoch,
                    "best": best,
                    "history": history,
                    "procedure": proc.state_dict(),
                },
                ckpt_path,
            )
            log.write(record)
            if show_progress is not False:
                print(
                    f"epoch {epoch + 1}/{cfg.train.epochs} loss {record['train_loss']:.4f} "
                    f"train acc {record['train_acc']:.4f} val acc {record['val_acc']}",
                    flush=True,
                )
        distributed.barrier()

    if cfg.train.select == "best_val" and best["state"] is not None:
        model.load_state_dict(best["state"])
    selected = best["epoch"] if cfg.train.select == "best_val" else cfg.train.epochs - 1
    test = evaluate(
        model,
        dataset.test,
        dataset.num_classes,
        batch_size=cfg.train.eval_batch_size,
        device=ctx.device,
        amp_dtype=ctx.amp_dtype,
    )
    diagnostics = feature_statistics(
        model,
        dataset.test,
        dataset.num_classes,
        batch_size=cfg.train.eval_batch_size,
        device=ctx.device,
    )
    result = {
        "schema": 1,
        "method": method_label(cfg),
        "seed": cfg.train.seed,
        "config": to_dict(cfg),
        "dataset": {
            "name": dataset.name,
            "num_classes": dataset.num_classes,
            "class_names": dataset.class_names,
            "sizes": {
                "train": len(dataset.train),
                "val": len(dataset.val),
                "test": len(dataset.test),
            },
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
        "diagnostics": {"test_" + k: v for k, v in diagnostics.items()},
        "history": history,
        "world_size": ctx.world,
        "train_time_s": history[-1]["time_s"] if history else None,
    }
    if ctx.rank == 0:
        checkpoint.save_torch(
            {"model": model.state_dict(), "loss": loss_fn.state_dict()}, run_dir / "final.pt"
        )
        checkpoint.save_json(result, result_path)
    distributed.barrier()
    return result
