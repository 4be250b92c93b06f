"""Typed run configuration: dataclass defaults, then a TOML file, then ``--set`` overrides.

Unknown sections or keys and values of the wrong type are errors that name the key (with
a suggestion: ``train.lr`` -> ``optim.lr``; ``mr2.engine.config_keys``); values are
range-checked, together with every name and option, by ``mr2.engine.validate`` before a run
starts. The
resolved configuration is written into every run directory (``config.toml``).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mr2.engine.config_keys import apply

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class DataConfig:
    name: str = "fashion_mnist"  # a name from mr2.data.available()
    data_dir: str = ""  # extra folder searched first for dataset files
    path: str = ""  # file or folder for the npz / folder datasets
    val_fraction: float = 0.1  # of each class, carved from the training split
    split_seed: int = 0  # seed of that carving: one split shared by all methods and seeds
    # each seed carves its own validation split and training subset (from train.seed; the
    # methods of one seed still share it): a small-data result rests on more than one draw
    split_follows_seed: bool = False
    train_subset: int = 0  # keep this many training samples (stratified); 0 = all
    augment: bool = False  # random crop (pad 4) + horizontal flip, for CIFAR-like images
    autoaugment: bool = False  # then AutoAugment, CIFAR-10 policy (needs torchvision)
    allow_download: bool = True  # try the official mirrors when files are missing
    options: dict[str, Any] = field(default_factory=dict)  # loader-specific, e.g. image_size


@dataclass
class ModelConfig:
    name: str = "mlp"  # a name from mr2.models.available() or mr2.backbones.available()
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {width = 128}
    probe: bool = False  # backbones: train a linear head on cached frozen features
    cache_dir: str = ""  # feature cache for probing; "" = ~/.cache/mr2/features


@dataclass
class LossConfig:
    name: str = "ce"  # a name from mr2.losses.available()
    options: dict[str, Any] = field(default_factory=dict)  # passed to losses.create
    # named settings resolved with the run's class count and feature width, e.g. MR²'s
    # "official" (the authors' scaling) or "paper"; ``options`` override them
    preset: str = ""


@dataclass
class OptimConfig:
    name: str = "sgd"  # "sgd" or "adamw"
    lr: float = 0.1  # peak learning rate (after warm-up)
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False  # SGD with Nesterov momentum
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW
    weight_decay: float = 5e-4  # L2 penalty (SGD) or decoupled decay (AdamW)
    warmup_epochs: float = 0.0  # linear warm-up from 0, in epochs
    warmup_steps: int = 0  # or in optimiser steps (takes precedence when > 0)
    schedule: str = "cosine"  # "cosine" (to 0 at the end) or "constant"
    grad_clip: float = 0.0  # max global gradient norm; 0 = off


@dataclass
class TrainConfig:
    epochs: int = 10  # passes over the training split
    batch_size: int = 128  # global batch (split across processes under DDP)
    eval_batch_size: int = 1024  # batch of validation and test passes
    seed: int = 0  # model init, data order and augmentation
    amp: bool = False  # mixed precision (autocast), of amp_dtype
    # "auto": bfloat16 on CPU, float16 + grad scaler on CUDA; or "float16" / "bfloat16"
    amp_dtype: str = "auto"
    device: str = "auto"  # "auto", "cpu", "cuda"
    select: str = "last"  # test the "last" epoch or the "best_val" one (validation mean-class acc)
    threads: int = 0  # torch CPU threads; 0 = torch's default
    procedure: str = "standard"  # "standard", or a loop-level baseline: "jtt", "lff", "drw"
    procedure_options: dict[str, Any] = field(default_factory=dict)  # e.g. {upweight = 5.0}
    # "csv", "tensorboard", "wandb": per-step loss / lr, per-epoch per-class numbers
    loggers: list[str] = field(default_factory=list)
    log_every: int = 100  # steps between logged losses (and progress lines off a terminal)
    # torch.compile the model for training (evaluation runs it uncompiled); measured in
    # benchmarks/engine_speed.py: it pays off on a GPU, not for the small CPU models. A mode
    # name ("reduce-overhead": CUDA graphs, "max-autotune") compiles the loss too
    compile: bool | str = False
    # image models and inputs in channels-last memory format (faster convolutions on
    # tensor-core GPUs and oneDNN CPUs for some models; see benchmarks/engine_speed.py)
    channels_last: bool = False
    # keep the validation and test logits beside the result (RUN_DIR/logits.npz, float32),
    # for offsets fit after training (mr2 posthoc, the report's frontiers)
    keep_logits: bool = True
    logits_max_mb: float = 256.0  # a run whose logits would be larger is refused up front


@dataclass
class CompareConfig:
    methods: list[str] = field(default_factory=lambda: ["ce", "mr2"])  # loss names
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # every method runs each seed
    reference: str = "ce"  # the baseline that ranks easy / medium / hard classes
    # per-method loss options, e.g. [compare.options.mr2] lambda_rep = 0.1
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per-method grids chosen on validation, e.g. [compare.grid.mr2] lambda_rep = [0.05, 0.1]
    grid: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    tune_seeds: list[int] = field(default_factory=list)  # seeds that tune; [] = first seed
    select_metric: str = "mean_class"  # validation "mean_class", "worst_class" or "hard"
    # backbones: after each run, WiSE-FT at these alphas (0 = zero-shot, 1 = fine-tuned)
    wise_alphas: list[float] = field(default_factory=list)
    # also evaluate each seed's model before training, as method "zero_shot" (backbones:
    # the pre-trained encoder with its zero-shot head)
    zero_shot: bool = False
    # where the runs train: "local" (one after another), "pool" (worker processes on this
    # machine), "ray" (Ray tasks), "slurm" (SLURM jobs through submitit)
    executor: str = "local"
    jobs: int = 0  # runs at once (pool, ray; slurm: array parallelism); 0 = GPUs or cores
    # the executor's own options, checked by it before anything trains: ray {address = "auto",
    # resources = {num_cpus = 4, num_gpus = 1}}; slurm: submitit's parameters, e.g.
    # {partition = "gpu", gpus_per_node = 1, time = 120, cluster = "local"}; local, pool: none
    executor_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)


def parse_override(text: str) -> dict[str, Any]:
    """``section.key=value`` -> {section: {key: value}}; value parsed as TOML (strings may be
    bare: ``loss.name=mr2``). ``section.key.sub=value`` sets a key inside a dict option."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ValueError(f"--set expects section.key=value, got {text!r}")
    path, raw = text.split("=", 1)
    parts = path.strip().split(".")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    node: dict[str, Any] = {}
    out = node
    for p in parts[:-1]:
        node[p] = {}
        node = node[p]
    node[parts[-1]] = value
    if len(parts) > 2:  # a dict option: merge one key, do not replace the table
        out = {parts[0]: {parts[1]: _MergeKey(parts[2:], value)}}
    return out


@dataclass
class _MergeKey:
    path: list[str]
    value: Any


def load(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Defaults, then the TOML file at ``path``, then each ``section.key=value`` override."""
    cfg = RunConfig()
    if path:
        file = Path(path)
        if file.is_dir():
            raise IsADirectoryError(
                f"config file {file} is a folder: pass a TOML file (e.g. {file}/config.toml)"
            )
        if not file.is_file():
            raise FileNotFoundError(f"config file {file} does not exist")
        with open(file, "rb") as fh:
            apply(cfg, tomllib.load(fh))
    for text in overrides:
        override = parse_override(text)
        section, body = next(iter(override.items()))
        key, value = next(iter(body.items()))
        if isinstance(value, _MergeKey):
            current = getattr(getattr(cfg, section, None), key, None)
            if not isinstance(current, dict):
                raise ValueError(f"{section}.{key} is not a table of options")
            merged = dict(current)
            node = merged
            for p in value.path[:-1]:
                node[p] = dict(node.get(p, {}))
                node = node[p]
            node[value.path[-1]] = value.value
            override = {section: {key: merged}}
        apply(cfg, override)
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_toml(cfg: RunConfig | dict) -> str:
    """Serialise the resolved configuration (tables and scalars only)."""
    data = to_dict(cfg) if isinstance(cfg, RunConfig) else cfg
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return repr(v)

    for section, body in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in body.items()]
        lines.append("")
    return "\n".join(lines)


def from_dict(data: dict[str, Any]) -> RunConfig:
    return apply(RunConfig(), data)
