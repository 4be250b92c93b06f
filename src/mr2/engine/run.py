"""Building a run from a validated configuration: device and processes, data, model, loss,
optimiser, schedule and procedure, gathered in one ``Run`` that the training loop (fit.py)
works with."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from mr2 import _checks, backbones, losses, models
from mr2 import data as mr2_data
from mr2.backbones.base import Backbone
from mr2.engine import procedures
from mr2.engine.config import RunConfig
from mr2.engine.context import Context, setup
from mr2.engine.evaluate import evaluate
from mr2.engine.features import fit_to_backbone
from mr2.engine.schedule import make_optimizer
from mr2.metrics import ClasswiseResult
from mr2.records import storage


def load_data(cfg: RunConfig) -> mr2_data.Dataset:
    d = cfg.data
    options = {
        "data_dir": d.data_dir,
        "path": d.path,
        "val_fraction": d.val_fraction,
        "seed": cfg.train.seed if d.split_follows_seed else d.split_seed,
        "train_subset": d.train_subset,
        "allow_download": d.allow_download,
    }
    accepted = mr2_data.options(d.name)
    for key in ("data_dir", "path"):
        if options[key] and key not in accepted:
            raise ValueError(f"data.{key} is set but dataset {d.name!r} does not use it")
    options = {k: v for k, v in options.items() if k in accepted}
    return mr2_data.load(d.name, **options, **d.options)


def is_backbone(cfg: RunConfig) -> bool:
    return cfg.model.name in backbones.BACKBONES


def create_model(cfg: RunConfig, dataset: mr2_data.Dataset) -> nn.Module:
    """The run's model, freshly initialised (from the current torch seed): a linear probe
    when the dataset holds cached backbone features, else the configured model."""
    if dataset.features_of is not None:
        return models.create("linear", dataset.input_shape, dataset.num_classes)
    if is_backbone(cfg):
        return create_backbone(cfg, dataset)
    if cfg.model.probe:
        raise ValueError(f"model.probe needs a pre-trained backbone, not {cfg.model.name!r}")
    return models.create(
        cfg.model.name, dataset.input_shape, dataset.num_classes, **cfg.model.options
    )


def create_backbone(cfg: RunConfig, dataset: mr2_data.Dataset) -> Backbone:
    """The configured pre-trained backbone with a head for the dataset's classes."""
    return backbones.create(
        cfg.model.name, dataset.num_classes, class_names=dataset.class_names, **cfg.model.options
    )


def load_run_data(cfg: RunConfig, ctx: Context) -> tuple[mr2_data.Dataset, nn.Module]:
    """A run's data, ready for its model, and that model as initialised at the start of
    training (seeded with ``train.seed``; for a backbone, its pre-trained / zero-shot state)."""
    dataset = load_data(cfg)
    torch.manual_seed(cfg.train.seed)
    return fit_to_backbone(cfg, dataset, create_model(cfg, dataset), ctx)


def load_final_model(cfg: RunConfig, dataset: mr2_data.Dataset, run_dir: Path) -> nn.Module:
    """The model a finished run saved in RUN_DIR/final.pt, on the CPU (``dataset`` as
    ``load_run_data`` gives it)."""
    path = Path(run_dir) / "final.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (a finished run dir?)")
    model = create_model(cfg, dataset)
    try:
        model.load_state_dict(storage.load_torch(path)["model"])
    except RuntimeError as err:  # shapes or keys of another model (e.g. other data.* classes)
        first = str(err).splitlines()[1:2] or [str(err)]
        raise ValueError(
            f"{path} does not fit the run's model {cfg.model.name!r} on {dataset.name} "
            f"({dataset.num_classes} classes): {first[0].strip()}. Evaluate it on data of "
            "the classes it was trained on"
        ) from err
    return model


def evaluate_split(
    cfg: RunConfig,
    ctx: Context,
    model: nn.Module,
    split: mr2_data.Split,
    num_classes: int,
    *,
    halves: bool = False,
) -> ClasswiseResult:
    """``split`` evaluated as the run evaluates: its eval batch size, device and precision
    (``halves``: also on its cross-fitting halves)."""
    return evaluate(
        model,
        split,
        num_classes,
        batch_size=cfg.train.eval_batch_size,
        device=ctx.device,
        amp_dtype=ctx.amp_dtype,
        halves=halves,
    )


def on_device(split: mr2_data.Split, device: torch.device) -> tuple[Any, torch.Tensor]:
    """The training split as the loop indexes it: a tensor split is moved to the GPU once
    (batches are then gathered and augmented there, no host copy per step); a lazy one
    (image files) stays where it is and is decoded batch by batch."""
    if device.type == "cuda" and isinstance(split.x, torch.Tensor):
        return split.x.to(device), split.y.to(device)
    return split.x, split.y


def build(cfg: RunConfig, ctx: Context):
    """(data fitted to the model, model, loss) of a run."""
    dataset, model = load_run_data(cfg, ctx)
    check_labels(dataset)
    model = model.to(ctx.device)
    return dataset, model, create_loss(cfg, dataset.num_classes, model, ctx.world).to(ctx.device)


def check_labels(dataset: mr2_data.Dataset) -> None:
    """Every split's labels are class indices in [0, K), checked once before training (the
    losses then run without their per-batch checks, which would wait for the GPU)."""
    for name in ("train", "val", "test"):
        y = getattr(dataset, name).y
        if not len(y):
            continue
        _checks.integer_labels(y, f"{name} labels")
        if int(y.max()) >= dataset.num_classes:
            raise ValueError(
                f"{name} labels must lie in [0, {dataset.num_classes}), got {int(y.max())}"
            )


def create_loss(cfg: RunConfig, num_classes: int, model: nn.Module, world: int) -> nn.Module:
    """The run's loss; ``loss.preset`` is resolved with the class count and the width of the
    model's head input. Under torch.distributed, losses that compare samples with each other
    (MR²'s representation term) gather features across processes unless the config says
    otherwise, so a DDP run computes what one process would."""
    options = dict(cfg.loss.options)
    accepted = losses.options(cfg.loss.name)
    if world > 1 and "gather_features" in accepted:
        options.setdefault("gather_features", True)
    if "validate" in accepted:  # labels are checked once before training (check_labels)
        options.setdefault("validate", False)
    head = getattr(model, "head", None)
    feature_dim = head.in_features if isinstance(head, nn.Linear) else None
    return losses.create(
        cfg.loss.name,
        num_classes=num_classes,
        preset=cfg.loss.preset,
        feature_dim=feature_dim,
        **options,
    )


@dataclass
class Run:
    """Everything one run's training loop works with."""

    cfg: RunConfig
    ctx: Context
    dataset: mr2_data.Dataset
    model: nn.Module
    net: nn.Module  # the model, wrapped in DistributedDataParallel when distributed
    loss_fn: nn.Module
    train_loss: nn.Module  # the loss the loop calls: loss_fn, compiled when asked
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    proc: procedures.Procedure

    @functools.cached_property
    def resident(self) -> tuple[Any, torch.Tensor]:
        """The training (x, y) the loop indexes (``on_device``; channels-last images once,
        when ``train.channels_last``: every batch gathered from them keeps the format)."""
        x, y = on_device(self.dataset.train, self.ctx.device)
        if self.cfg.train.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    @property
    def steps_per_epoch(self) -> int:
        return len(self.dataset.train) // self.cfg.train.batch_size

    def autocast(self):
        return torch.autocast(
            self.ctx.device.type,
            dtype=self.ctx.amp_dtype or torch.float32,
            enabled=self.ctx.amp_dtype is not None,
        )

    def evaluate(self, split: mr2_data.Split) -> ClasswiseResult:
        return evaluate_split(self.cfg, self.ctx, self.model, split, self.dataset.num_classes)

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "loss": self.loss_fn.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "procedure": self.proc.state_dict(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.loss_fn.load_state_dict(state["loss"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.proc.load_state_dict(state["procedure"])


def training_module(cfg: RunConfig, ctx: Context, model: nn.Module) -> nn.Module:
    """The module the loop calls: the model in channels-last format if asked (in place: the
    saved weights are the same), wrapped in DistributedDataParallel when distributed, then
    ``torch.compile``d if asked."""
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    net: nn.Module = model
    if ctx.world > 1:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.train.compile:
        net = cast(nn.Module, torch.compile(net, mode=compile_mode(cfg)))
    return net


def compile_mode(cfg: RunConfig) -> str | None:
    """``train.compile``: true -> torch.compile's default mode; a mode name as given."""
    return cfg.train.compile if isinstance(cfg.train.compile, str) else None


def training_loss(cfg: RunConfig, loss_fn: nn.Module) -> nn.Module:
    """The loss the loop calls: with ``train.compile = "reduce-overhead"`` (or
    "max-autotune") compiled too, so that a whole step of model and loss can run from CUDA
    graphs; the module itself (its state, margins, checkpoints) stays ``loss_fn``."""
    if isinstance(cfg.train.compile, str) and cfg.train.compile != "default":
        return cast(nn.Module, torch.compile(loss_fn, mode=cfg.train.compile))
    return loss_fn


def prepare(
    cfg: RunConfig, run_dir: Path, resume: bool, train_run=None, ctx: Context | None = None
) -> Run:
    """The ``Run`` of ``cfg``; ``train_run`` (the trainer, passed in by it) lets a procedure
    train a sub-run (JTT's stage 1) without importing the trainer; ``ctx``: the process's
    context when the caller has set it up already."""
    ctx = ctx or setup(cfg)
    if cfg.train.batch_size % ctx.world:
        raise ValueError(
            f"train.batch_size {cfg.train.batch_size} is not divisible by the {ctx.world} processes"
        )
    dataset, model, loss_fn = build(cfg, ctx)
    if len(dataset.train) < cfg.train.batch_size:
        raise ValueError(
            f"only {len(dataset.train)} training samples for batch size {cfg.train.batch_size}"
        )
    if cfg.train.select == "best_val" and not len(dataset.val):
        raise ValueError("train.select = 'best_val' needs a validation split (data.val_fraction)")
    net = training_module(cfg, ctx, model)
    opt = make_optimizer(model, cfg.optim)
    services = procedures.Services(create_model, load_final_model, train_run)
    proc = procedures.create(
        cfg.train.procedure,
        cfg,
        dataset,
        ctx.device,
        run_dir,
        services=services,
        **cfg.train.procedure_options,
    )
    if proc.single_process_only and ctx.world > 1:
        raise ValueError(f"procedure {cfg.train.procedure!r} runs on one process only")
    proc.bind(opt)
    proc.resume = resume  # the caller runs proc.prepare() once the run directory is set up
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp_dtype == torch.float16)
    train_loss = training_loss(cfg, loss_fn)
    return Run(cfg, ctx, dataset, model, net, loss_fn, train_loss, opt, scaler, proc)
