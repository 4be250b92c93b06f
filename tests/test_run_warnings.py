"""Run warnings: MR²'s representation-vs-logit gradient ratio, training near chance, and the
report's flags (margins that favour the easy classes)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from helpers import tiny_config
from mr2 import MR2Loss, with_features
from mr2.engine.run_warnings import rep_gradient_ratio, run_warnings
from mr2.engine.train import train
from mr2.records.result import EpochRecord
from mr2.report.flags import margins_favour_easy, near_chance, representation_dominates
from mr2.report.summary import Internals, MethodSummary, ReportSummary, RunRow


def _run(lambda_rep: float, seed: int = 0):
    torch.manual_seed(seed)
    model = with_features(
        torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    )
    x, y = torch.randn(40, 5), torch.arange(40) % 3
    loss_fn = MR2Loss(3, lambda_rep=lambda_rep)
    loss_fn(*model(x), y)  # one training step's statistics
    split = SimpleNamespace(x=x, y=y)
    return SimpleNamespace(
        model=model,
        loss_fn=loss_fn,
        dataset=SimpleNamespace(train=split),
        ctx=SimpleNamespace(device=torch.device("cpu")),
        cfg=SimpleNamespace(train=SimpleNamespace(batch_size=16)),
    )


def test_rep_gradient_ratio_against_the_two_terms_computed_apart():
    run = _run(0.5)
    before = {k: v.clone() for k, v in run.loss_fn.state_dict().items()}
    ratio = rep_gradient_ratio(run)
    # reference: the logit term alone from a copy with lambda_rep = 0, the whole loss from
    # the original, each differentiated with respect to the features on the first batch
    logit_only = copy.deepcopy(run.loss_fn)
    logit_only.lambda_rep = 0.0
    run.model.eval()
    x, y = run.dataset.train.x[:16], run.dataset.train.y[:16]
    logits, f = run.model(x)
    with run.loss_fn.statistics_frozen(), logit_only.statistics_frozen():
        g_all = torch.autograd.grad(
            run.loss_fn.per_sample(logits, f, y).mean(), f, retain_graph=True
        )[0]
        g_logit = torch.autograd.grad(logit_only.per_sample(logits, f, y).mean(), f)[0]
    assert ratio == pytest.approx(float((g_all - g_logit).norm() / g_logit.norm()), rel=1e-5)
    assert ratio > 0
    for k, v in run.loss_fn.state_dict().items():  # statistics untouched
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in run.model.parameters())  # nothing written
    assert rep_gradient_ratio(_run(0.0)) is None  # no representation term: nothing to say
    doubled = rep_gradient_ratio(_run(1.0))
    assert doubled == pytest.approx(2 * ratio, rel=1e-5)  # linear in lambda_rep


def test_engine_records_the_ratio_and_warns(tmp_path, capsys):
    result = train(tiny_config(loss__name="mr2"), tmp_path / "r", show_progress=False)
    assert all(h.rep_grad_ratio is not None and h.rep_grad_ratio > 0 for h in result.history)
    plain = train(tiny_config(loss__name="ce"), tmp_path / "c", show_progress=False)
    assert all(h.rep_grad_ratio is None for h in plain.history)
    near = [EpochRecord(epoch=0, time_s=1.0, train_acc=0.12, rep_grad_ratio=3.0)]
    found = run_warnings(near, 10, "mr2")
    assert len(found) == 2 and "did not train" in found[0] and "3.00x" in found[1]
    assert "lambda_rep" in found[0]
    for loss in ("ce", "focal"):  # the advice is MR²'s only: no lambda_rep for these
        said = run_warnings(near[:1], 10, loss)
        assert (
            "did not train" in said[0]
            and "lambda_rep" not in said[0]
            and "learning rate" in said[0]
        )
    fine = [EpochRecord(epoch=0, time_s=1.0, train_acc=0.16, rep_grad_ratio=0.5)]
    assert run_warnings(fine, 10, "mr2") == []  # 16 % > 1.5 x chance, ratio below 1


def _row(method, acc, ratio, config=None):
    return RunRow(method, 0, None, config or {}, 0.5, [0.5] * 5, None, None, [1] * 5, None,
                  None, acc, ratio)  # fmt: skip


def _body(val=None, margins=None):
    internals = Internals(0, list(range(len(margins))), margins, []) if margins else None
    return MethodSummary([0], {}, [0.5] * 5, [0.0] * 5, val, None, None, [], internals, None)


def test_report_flags_by_hand():
    runs = [_row("mr2", 0.1, 2.0, {"loss": {"name": "mr2"}}), _row("ce", 0.9, None)]
    methods = {
        "ce": _body(val=[0.9, 0.8, 0.7, 0.6, 0.5]),
        "mr2": _body(margins=[[1.0] * 5, [1.4, 1.2, 1.0, 0.9, 0.8]]),
        "mr2_logit": _body(margins=[[0.8, 0.9, 1.0, 1.2, 1.4]]),
    }
    names = [str(i) for i in range(5)]
    summary = ReportSummary(1, "ce", "d", names, "", True, {}, {}, runs, methods)
    assert [f.split(" ")[0] for f in near_chance(summary)] == ["mr2"]
    assert "lambda_rep" in near_chance(summary)[0]
    runs.append(_row("focal", 0.1, None, {"loss": {"name": "focal"}}))
    focal = near_chance(summary)[1]
    assert focal.startswith("focal") and "lambda_rep" not in focal and "learning rate" in focal
    runs.pop()
    assert "2.00x" in representation_dominates(summary)[0]
    easy = margins_favour_easy(summary)  # mr2's margins rise with accuracy: Spearman +1
    assert len(easy) == 1 and easy[0].startswith("mr2:") and "+1.00" in easy[0]
    # the representation-only ablation records margins it never applies: not flagged
    methods["mr2_rep"] = methods["mr2"]
    runs.append(_row("mr2_rep", 0.9, None, {"loss": {"name": "mr2_rep"}}))
    assert [f.split(":")[0] for f in margins_favour_easy(summary)] == ["mr2"]
    methods["ce"] = _body()  # no validation: nothing claimed
    assert margins_favour_easy(summary) == []


def test_frozen_features_have_no_ratio():
    """A linear probe: the representation term is a constant, nothing to compare."""
    run = _run(0.5)
    for p in run.model.parameters():
        p.requires_grad_(False)
    head = [m for m in run.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    head.weight.requires_grad_(True)
    assert rep_gradient_ratio(run) is None
