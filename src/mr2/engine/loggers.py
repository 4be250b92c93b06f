"""Run loggers chosen in the config (``train.loggers``): ``csv`` (steps.csv and epochs.csv
in the run directory), ``tensorboard`` (``torch.utils.tensorboard`` event files under
RUN/tensorboard) and ``wandb`` (Weights & Biases, when installed). Each logs the loss and
learning rate every ``train.log_every`` steps and, per epoch, the training and validation
numbers, the per-class validation accuracy and MR²'s margins and spreads. The JSON-lines
log (log.jsonl) is always written and stays the machine-readable record."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mr2._registry import Registry
from mr2.records.result import EpochRecord

# every logger is built as factory(run_dir, config, resume)
LOGGERS = Registry("logger", exclude=("run_dir", "config", "resume"))
T = TypeVar("T", bound=type)


def register(name: str, description: str = "", needs: str | None = None) -> Callable[[T], T]:
    """Class decorator: a logger ``train.loggers`` can name, built as ``cls(run_dir, config,
    resume)`` with the methods of ``Logger`` (``step``, ``epoch``, ``close``); ``needs``:
    the package it imports (checked before training)."""

    def wrap(cls: T) -> T:
        LOGGERS.register(name, cls, description, needs=needs or ())
        return cls

    return wrap


def problems(names: list[str]) -> list[str]:
    """Unknown logger names, and loggers whose package is missing (with the fix)."""
    return [
        problem
        for name in names
        for problem in LOGGERS.problems(name, "train.loggers", f"pip install {name}")
    ]


def epoch_scalars(record: EpochRecord, class_names: list[str]) -> dict[str, float]:
    """An epoch's history record as flat ``group/name`` scalars (None and lists expanded;
    per-class series a loss records under its own names as ``series/name``)."""
    row = record.to_dict()
    out = {}
    for key in ("train_loss", "train_acc", "val_acc", "val_mean_class", "lr", "time_s"):
        if row.get(key) is not None:
            out[f"epoch/{key}"] = float(row[key])
    groups = {"val_per_class": "val_class", "margins": "margin", "spreads": "spread"}
    groups |= {"q": "q", "class_weights": "class_weight"}
    series = [(row.get(key), group) for key, group in groups.items()]
    series += [(values, f"series/{key}") for key, values in (row.get("series") or {}).items()]
    for values, group in series:
        for name, value in zip(class_names, values or [], strict=False):
            out[f"{group}/{name}"] = float(value)
    return out


class CsvLogger:
    """steps.csv and epochs.csv in the run directory (appended to on resume)"""

    def __init__(self, run_dir: Path, config: dict[str, Any], resume: bool) -> None:
        self.steps_path, self.epochs_path = run_dir / "steps.csv", run_dir / "epochs.csv"
        if not resume:
            for path in (self.steps_path, self.epochs_path):
                path.unlink(missing_ok=True)

    @staticmethod
    def _append(path: Path, row: dict[str, Any]) -> None:
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def step(self, step: int, values: dict[str, float]) -> None:
        self._append(self.steps_path, {"step": step, **values})

    def epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        self._append(self.epochs_path, {"epoch": epoch + 1, **scalars})

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """torch.utils.tensorboard event files under RUN/tensorboard"""

    def __init__(self, run_dir: Path, config: dict[str, Any], resume: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def step(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"step/{key}", value, step)

    def epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, epoch + 1)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run named after the run directory, in the project ``$WANDB_PROJECT`` (W&B's own
    variable; default "mr2") and the entity ``$WANDB_ENTITY`` if set."""

    def __init__(self, run_dir: Path, config: dict[str, Any], resume: bool) -> None:
        import wandb

        self.wandb = wandb
        project = os.environ.get("WANDB_PROJECT") or "mr2"
        self.run = wandb.init(project=project, dir=str(run_dir), config=config, name=run_dir.name)

    def step(self, step: int, values: dict[str, float]) -> None:
        self.run.log({f"step/{k}": v for k, v in values.items()}, step=step)

    def epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars)

    def close(self) -> None:
        self.run.finish()


class Logger(Protocol):
    def step(self, step: int, values: dict[str, float]) -> None: ...
    def epoch(self, epoch: int, scalars: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class Loggers:
    """The run's loggers together (none on ranks other than 0)."""

    def __init__(self, names: list[str], run_dir: Path, config: dict, *, resume: bool) -> None:
        self.loggers: list[Logger] = [
            LOGGERS.create(name, run_dir, config, resume) for name in names
        ]

    def step(self, step: int, values: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.step(step, values)

    def epoch(self, epoch: int, record: EpochRecord, class_names: list[str]) -> None:
        scalars = epoch_scalars(record, class_names)
        for logger in self.loggers:
            logger.epoch(epoch, scalars)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


register("csv", "steps.csv and epochs.csv in the run directory")(CsvLogger)
register("tensorboard", "TensorBoard event files under RUN/tensorboard", "tensorboard")(
    TensorBoardLogger
)
register("wandb", "Weights & Biases, when installed", "wandb")(WandbLogger)
