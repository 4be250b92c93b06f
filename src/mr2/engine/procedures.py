"""Training procedures that need the loop, not just a loss: JTT, LfF, deferred re-weighting.

Each plugs into the one training loop through two hooks: ``prepare()`` before the first
epoch and ``batch_weights(epoch, idx, x, y, logits)`` after the main model's forward, which
returns per-sample weights (B,) for the loss (or None). State that must survive a resume is
in ``state_dict()``. CDB's per-epoch refresh and class-level group DRO live in their losses
(``cdb``, ``group_dro``) and are driven by the same loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mr2._registry import Registry
from mr2.data import Dataset
from mr2.engine.evaluate import predict
from mr2.engine.schedule import make_optimizer
from mr2.losses import generalized_cross_entropy
from mr2.records.storage import save_json


@dataclass(frozen=True)
class Services:
    """What a procedure may build, handed in by the engine (so procedures import neither
    the run set-up nor the trainer): a fresh model for a config and dataset, the model a
    finished run saved, and the trainer itself for sub-runs (JTT's stage 1)."""

    create_model: Callable[[Any, Dataset], nn.Module]
    load_final_model: Callable[[Any, Dataset, Path], nn.Module]
    train_run: Callable[..., dict] | None = None


class Procedure:
    """Plain training: no weights."""

    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        cfg,
        dataset: Dataset,
        device: torch.device,
        run_dir: Path,
        services: Services | None = None,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"procedure {type(self).__name__} does not take option(s) "
                f"{unknown}; accepted: {sorted(self.defaults)}"
            )
        self.cfg, self.dataset, self.device, self.run_dir = cfg, dataset, device, run_dir
        self.services = services
        self.options = {**self.defaults, **options}
        self.resume = True  # set by the loop: False restarts sub-runs too

    single_process_only = False

    def prepare(self) -> None:
        pass

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        """Called with the main optimiser (whose learning rate a procedure may follow)."""

    def batch_weights(
        self, epoch: int, idx: Tensor, x: Tensor, y: Tensor, logits: Tensor
    ) -> Tensor | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class JTT(Procedure):
    """Just Train Twice (Liu et al., 2021). Stage 1: ERM for ``first_epochs`` epochs (its own
    run under RUN_DIR/stage1). The error set is the training samples stage 1 misclassifies;
    stage 2 trains a fresh model with those samples up-weighted by ``upweight``."""

    defaults: ClassVar[dict[str, Any]] = {"first_epochs": 1, "upweight": 5.0}

    def prepare(self) -> None:
        if self.services is None or self.services.train_run is None:
            raise ValueError("JTT trains a first stage: it needs the engine's trainer (services)")
        train, load_final_model = self.services.train_run, self.services.load_final_model
        stage1 = copy.deepcopy(self.cfg)
        stage1.train.procedure, stage1.train.procedure_options = "standard", {}
        stage1.loss.name, stage1.loss.options = "ce", {}
        stage1.train.epochs = int(self.options["first_epochs"])
        stage1.train.select = "last"
        train(stage1, self.run_dir / "stage1", resume=self.resume, show_progress=False)
        model = load_final_model(self.cfg, self.dataset, self.run_dir / "stage1")
        preds = predict(
            model.to(self.device), self.dataset.train.x, self.cfg.train.eval_batch_size, self.device
        )
        errors = preds != self.dataset.train.y
        self.weights = 1.0 + (float(self.options["upweight"]) - 1.0) * errors.float()
        save_json(  # atomic: a link planted there is replaced, never followed
            {
                "error_indices": torch.nonzero(errors).flatten().tolist(),
                "upweight": self.options["upweight"],
                "train_size": len(errors),
            },
            self.run_dir / "jtt_errors.json",
        )

    def batch_weights(self, epoch, idx, x, y, logits):
        return self.weights[idx].to(logits.device)


def effective_number_weights(counts: Tensor, beta: float) -> Tensor:
    """Class-balanced weights (Cui et al., 2019): (1 - beta) / (1 - beta^n_j), mean 1."""
    w = (1 - beta) / (1 - beta ** counts.double())
    return (w * len(w) / w.sum()).float()


class DRW(Procedure):
    """Deferred re-weighting (Cao et al., 2019): plain weights until ``start_epoch``, then
    class weights by effective number. On balanced training data the weights are all 1."""

    defaults: ClassVar[dict[str, Any]] = {"start_epoch": 0.8, "beta": 0.9999}

    def prepare(self) -> None:
        counts = torch.bincount(self.dataset.train.y, minlength=self.dataset.num_classes)
        self.class_weights = effective_number_weights(counts.clamp(min=1), self.options["beta"])
        start = self.options["start_epoch"]  # a fraction of the epochs if < 1
        self.start = int(start * self.cfg.train.epochs) if start < 1 else int(start)

    def batch_weights(self, epoch, idx, x, y, logits):
        if epoch < self.start:
            return None
        return self.class_weights.to(y.device)[y]


class LfF(Procedure):
    """Learning from Failure (Nam et al., 2020). A biased copy of the model is trained with
    generalised cross-entropy (it latches onto easy cues); the main (debiased) model's
    per-sample weight is the relative difficulty ``W = L_B / (L_B + L_D)`` from EMAs (decay
    ``ema``) of both models' per-sample cross-entropies, each normalised by its class's
    maximum."""

    defaults: ClassVar[dict[str, Any]] = {"q": 0.7, "ema": 0.7}

    def prepare(self) -> None:
        if self.services is None:
            raise ValueError("LfF builds a biased twin model: it needs the engine's services")
        torch.manual_seed(self.cfg.train.seed + 1)
        ds = self.dataset
        self.biased = self.services.create_model(self.cfg, ds).to(self.device)
        self.opt = make_optimizer(self.biased, self.cfg.optim)
        self.ema_b = torch.zeros(len(ds.train), device=self.device)
        self.ema_d = torch.zeros(len(ds.train), device=self.device)

    def relative_difficulty(self, idx: Tensor, y: Tensor, loss_b: Tensor, loss_d: Tensor) -> Tensor:
        a = self.options["ema"]
        self.ema_b[idx] = a * self.ema_b[idx] + (1 - a) * loss_b
        self.ema_d[idx] = a * self.ema_d[idx] + (1 - a) * loss_d
        k = self.dataset.num_classes
        train_y = self.dataset.train.y.to(self.device)
        max_b = torch.zeros(k, device=self.device).scatter_reduce(0, train_y, self.ema_b, "amax")
        max_d = torch.zeros(k, device=self.device).scatter_reduce(0, train_y, self.ema_d, "amax")
        lb = self.ema_b[idx] / max_b[y].clamp(min=1e-8)
        ld = self.ema_d[idx] / max_d[y].clamp(min=1e-8)
        return lb / (lb + ld + 1e-8)

    def batch_weights(self, epoch, idx, x, y, logits):
        idx = idx.to(self.device)
        self.biased.train()
        # the biased model follows the main schedule; read the optimiser's current groups
        # (load_state_dict replaces the list, so a list kept from before a resume is stale)
        for group, main in zip(self.opt.param_groups, self.main.param_groups, strict=True):
            group["lr"] = main["lr"]
        logits_b, _ = self.biased(x)
        loss_b = generalized_cross_entropy(logits_b.float(), y, self.options["q"])
        self.opt.zero_grad(set_to_none=True)
        loss_b.mean().backward()
        self.opt.step()
        with torch.no_grad():
            ce_b = F.cross_entropy(logits_b.detach().float(), y, reduction="none")
            ce_d = F.cross_entropy(logits.float(), y, reduction="none")
            return self.relative_difficulty(idx, y, ce_b, ce_d)

    single_process_only = True  # the biased model and the EMAs are per process

    def bind(self, optimizer):
        self.main = optimizer

    def state_dict(self):
        return {
            "biased": self.biased.state_dict(),
            "opt": self.opt.state_dict(),
            "ema_b": self.ema_b,
            "ema_d": self.ema_d,
        }

    def load_state_dict(self, state):
        self.biased.load_state_dict(state["biased"])
        self.opt.load_state_dict(state["opt"])
        self.ema_b.copy_(state["ema_b"])
        self.ema_d.copy_(state["ema_d"])


PROCEDURES = Registry("procedure")
for _name, _cls in (("standard", Procedure), ("jtt", JTT), ("lff", LfF), ("drw", DRW)):
    PROCEDURES.register(_name, _cls, options=dict(_cls.defaults))


def defaults(name: str) -> dict[str, Any]:
    """Procedure ``name``'s options with their default values."""
    return {key: option.default for key, option in PROCEDURES.spec(name).items()}


DEFAULT_LOSS = {"jtt": "ce", "lff": "ce", "drw": "ldam"}


def create(
    name: str,
    cfg,
    dataset: Dataset,
    device: torch.device,
    run_dir: Path,
    services: Services | None = None,
    **options: Any,
) -> Procedure:
    PROCEDURES.check_options(name, options)
    return PROCEDURES[name](cfg, dataset, device, run_dir, services, **options)


__all__ = [
    "DEFAULT_LOSS",
    "DRW",
    "JTT",
    "PROCEDURES",
    "LfF",
    "Procedure",
    "Services",
    "create",
    "defaults",
    "effective_number_weights",
]
