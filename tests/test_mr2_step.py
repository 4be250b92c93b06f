"""One MR² training step: its operations (no host sync, no data-dependent shape), its
float64 statistics (precise where float32 sums cancel), its analytic gradient and old
checkpoints (compiled forms: test_mr2_loss.py)."""

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import references as ref
from mr2 import MR2Loss, representation
from mr2.losses.mr2.terms import MarginTerms, reference

SYNCING = {"_local_scalar_dense", "nonzero", "is_nonzero", "masked_select", "unique", "item"}
SYNCING |= {"bincount"}  # its output size is read from the data on a GPU


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def step_ops(loss_fn, b=128, k=100, d=640):
    """The ATen operations of one training step (linear head + loss, forward + backward)
    after two warm-up steps."""
    torch.manual_seed(0)
    head, feats = nn.Linear(d, k), torch.randn(b, d, requires_grad=True)
    y = torch.randint(0, k, (b,))

    def step():
        head.zero_grad(set_to_none=True)
        feats.grad = None
        z = head(feats)
        (loss_fn(z, feats, y) if loss_fn is not None else F.cross_entropy(z, y)).backward()

    step(), step()
    with Ops() as ops:
        step()
    return ops.names


@pytest.fixture
def gram_path(monkeypatch):
    """The step an accelerator takes: the representation term from the Gram (the pair
    list, which reads its number of pairs, is the CPU's form)."""
    monkeypatch.setattr(representation, "LIST_FROM_BATCH", sys.maxsize)


@pytest.mark.parametrize("options", [{}, {"rep_reduction": "class"}, {"lambda_rep": 0.0}])
def test_a_step_neither_syncs_nor_depends_on_data_for_shapes(options, gram_path):
    """validate=False at K = 100: no operation that reads a value or makes a data-dependent
    shape."""
    names = step_ops(MR2Loss(100, validate=False, **options))
    assert not SYNCING & set(names), SYNCING & set(names)
    assert "_local_scalar_dense" in step_ops(MR2Loss(100, validate=True))  # the check can fail


def test_a_step_dispatches_at_most_98_operations(gram_path):
    """172 before the fused form, 100 before the in-place update and the shared class
    moments (benchmarks/results/op_count_cpu.md); cross-entropy 20."""
    assert len(step_ops(None)) == 20
    assert len(step_ops(MR2Loss(100, validate=False))) <= 98


def test_float64_sums_keep_the_spread_of_features_far_from_the_origin():
    """Features at ||mu||^2 / s^2 ~ 1e8: float32 sums of ||f||^2 lose s^2 entirely
    (E||f||^2 - ||mu||^2 cancels); the float64 sums keep float32 precision."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(60, 16, generator=g) * 0.1 + 1000.0
    y = torch.arange(60) % 3
    loss_fn = MR2Loss(3, ema_decay=0.0)
    loss_fn(torch.randn(60, 3, generator=g), f, y)
    count, norm_sq, dev = ref.class_statistics(f, y, 3)
    torch.testing.assert_close(
        loss_fn.spreads(), torch.tensor(dev, dtype=torch.float64), rtol=1e-5, atol=0
    )
    gamma = ref.margins(norm_sq, dev, [c > 0 for c in count], 1.0)
    torch.testing.assert_close(loss_fn.margins(), torch.tensor(gamma, dtype=torch.float64))
    float32_sums = (f.square().sum(1)[y == 0].mean() - f[y == 0].mean(0).square().sum()).item()
    assert abs(float32_sums - dev[0]) > dev[0] / 2  # what float32 sums would have said


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("margins", [True, False])
@pytest.mark.parametrize("rep_weight", [False, True])
def test_analytic_backward_matches_autograd_of_the_plain_formula(reduction, margins, rep_weight):
    g = torch.Generator().manual_seed(1)
    b, k, d = 8, 3, 4  # small: gradgradcheck is quadratic in the inputs
    z = torch.randn(b, k, dtype=torch.float64, generator=g, requires_grad=True)
    f = torch.randn(b, d, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.arange(b) % k
    column = y.unsqueeze(1)
    inv = torch.rand(b, 1, dtype=torch.float64, generator=g) + 0.5 if margins else None
    other = y.unsqueeze(1) != y
    s_bar, scale = torch.tensor(0.7, dtype=torch.float64), torch.tensor(2.5, dtype=torch.float64)
    w = torch.rand(b, dtype=torch.float64, generator=g) + 0.5 if rep_weight else None
    args = (column, inv, other, s_bar, scale, 0.4, w, reduction)

    def fused(zz, ff):
        with torch.no_grad():
            gram = ff @ ff.t()
        return MarginTerms.apply(zz, ff, column, inv, gram, other, s_bar, scale, 0.4, w, reduction)

    seed = torch.rand(b, dtype=torch.float64, generator=g) if reduction == "none" else None
    got = torch.autograd.grad(fused(z, f), (z, f), seed)
    want = torch.autograd.grad(reference(z, f, *args), (z, f), seed)
    torch.testing.assert_close(fused(z, f), reference(z, f, *args))
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e)
    assert torch.autograd.gradgradcheck(fused, (z, f))  # second derivatives through the plain form


def test_checkpoints_of_the_previous_layout_load_and_continue_identically():
    """mr2 <= 0.9 saved weight / class_mean / sq_dev (float32 means): they load into the
    sums and continue as the current state does."""
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(30, 4, generator=g), torch.randn(30, 6, generator=g) + 1,
                torch.arange(30) % 4) for _ in range(3)]  # fmt: skip
    loss_fn = MR2Loss(4, ema_decay=0.8, norm_p=5.0).double()
    for batch in batches[:2]:
        loss_fn(*batch)
    legacy = {"weight": loss_fn.weight, "class_mean": loss_fn.class_mean, "sq_dev": loss_fn.sq_dev}
    restored = MR2Loss(4, ema_decay=0.8, norm_p=5.0)
    restored.load_state_dict({k: v.clone() for k, v in legacy.items()})
    torch.testing.assert_close(restored.sums, loss_fn.sums)
    torch.testing.assert_close(restored.sq_dev_p, loss_fn.sq_dev_p)
    torch.testing.assert_close(restored(*batches[2]), loss_fn(*batches[2]).float())
    torch.testing.assert_close(restored.margins(), loss_fn.margins())


def test_a_no_grad_call_in_train_mode_says_it_updates_the_statistics():
    loss_fn, batch = MR2Loss(3), (torch.randn(6, 3), torch.randn(6, 4), torch.arange(6) % 3)
    with torch.no_grad(), pytest.warns(UserWarning, match=r"loss_fn\.eval\(\)"):
        loss_fn(*batch)
    assert loss_fn.weight.sum() == 6  # it did update (documented, said once)
    loss_fn.eval()
    with torch.no_grad():
        loss_fn(*batch)  # eval(): no update, no warning
    assert loss_fn.weight.sum() == 6
