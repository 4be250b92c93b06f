"""Soft (B, K) targets (mixup / cutmix / label smoothing) for MR² and cross-entropy.

References: the hard-label loss (one-hot rows), PyTorch's soft and label-smoothed
``F.cross_entropy`` (all margins equal), per-class cross-entropies by a loop, and weighted
class statistics computed in float64 by hand."""

import copy

import pytest
import torch
import torch.nn.functional as F
from timm.data import Mixup
from torchvision.transforms import v2

from mr2 import MR2Loss, distributed, losses
from mr2.losses.mr2 import soft as mr2_soft

K = 5


def batch(b=24, k=K, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, generator=g) * (1 + torch.arange(b).remainder(3).unsqueeze(1))
    y = torch.arange(b).remainder(k)
    return f @ torch.randn(d, k, generator=g), f, y


def mixed(y, lam, k=K):
    """Per-sample mixup rows lam_i e_{y_i} + (1 - lam_i) e_{y_flip}."""
    lam = lam.unsqueeze(1)
    return lam * F.one_hot(y, k) + (1 - lam) * F.one_hot(y.flip(0), k)


def warmed(**options):
    """An MR2Loss whose statistics saw two batches (unequal margins), in eval mode."""
    loss_fn = MR2Loss(K, **options)
    for seed in (1, 2):
        logits, f, y = batch(seed=seed)
        loss_fn(logits, f, y)
    assert float(loss_fn.margins().std()) > 0.01
    return loss_fn.eval()


def per_class_ce(logits, margins):
    """(B, K): CE(z_i / gamma_k, k) for every class k, one ``F.cross_entropy`` each."""
    cols = [
        F.cross_entropy(logits / float(g), torch.full((len(logits),), k), reduction="none")
        for k, g in enumerate(margins.tolist())
    ]
    return torch.stack(cols, 1)


OPTIONS = [
    {},
    {"norm_p": 5.0},
    {"rep_reduction": "class"},
    {"lambda_rep": 0.0},
    {"logit_margins": False},
    {"margin_statistic": "centered", "c_bar": 2.0},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_one_hot_rows_give_the_hard_label_loss_gradients_and_statistics(options):
    hard, soft = MR2Loss(K, **options), MR2Loss(K, **options)
    for seed in range(3):
        logits, f, y = batch(seed=seed)
        grads = []
        for loss_fn, targets in ((hard, y), (soft, F.one_hot(y, K).float())):
            f_ = f.clone().requires_grad_()
            z = logits.clone().requires_grad_()
            value = loss_fn(z, f_, targets)
            d = torch.autograd.grad(value, (z, f_), allow_unused=True)
            grads.append((value, *(torch.zeros(1) if g is None else g for g in d)))
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        for key, value in hard.state_dict().items():
            # float64 buffers, but the p-norm deviations come from float32 (cdist on the soft
            # path, explicit p-norms on the hard one): they agree to float32's precision
            # (this CPU differed by 1.3e-7 relative, above float64's default 1e-7)
            torch.testing.assert_close(soft.state_dict()[key], value, rtol=1e-6, atol=1e-9)


def test_mixed_rows_are_the_expected_margin_cross_entropy():
    loss_fn = warmed(lambda_rep=0.0)
    logits, f, y = batch(seed=3)
    lam = torch.linspace(0.05, 0.95, len(y))  # per sample: timm's mode="elem"
    t = mixed(y, lam)
    expect = (t * per_class_ce(logits, loss_fn.margins())).sum(1)
    got = MR2Loss(K, lambda_rep=0.0, reduction="none")
    got.load_state_dict(loss_fn.state_dict())
    torch.testing.assert_close(got.eval()(logits, f, t), expect.float(), rtol=1e-5, atol=1e-6)
    halves = 0.5 * loss_fn(logits, f, y) + 0.5 * loss_fn(logits, f, y.flip(0))
    torch.testing.assert_close(loss_fn(logits, f, mixed(y, torch.full_like(lam, 0.5))), halves)


def test_equal_margins_reduce_to_pytorch_soft_and_smoothed_cross_entropy():
    logits, f, y = batch()
    t = mixed(y, torch.rand(len(y), generator=torch.Generator().manual_seed(0)))
    fresh = MR2Loss(K, lambda_rep=0.0, c_bar=2.0).eval()  # nothing seen: every margin c_bar
    torch.testing.assert_close(fresh(logits, f, t), F.cross_entropy(logits / 2.0, t))
    smooth = MR2Loss(K, lambda_rep=0.0, c_bar=2.0, label_smoothing=0.1).eval()
    expect = F.cross_entropy(logits / 2.0, y, label_smoothing=0.1)
    torch.testing.assert_close(smooth(logits, f, y), expect)
    torch.testing.assert_close(
        smooth(logits, f, t), F.cross_entropy(logits / 2.0, t, label_smoothing=0.1)
    )
    ce = losses.create("ce", num_classes=K, temperature=2.0)
    torch.testing.assert_close(ce(logits, None, t), F.cross_entropy(logits / 2.0, t))


def test_label_smoothing_keeps_each_class_margin_and_the_plain_statistics():
    plain, smooth = MR2Loss(K, lambda_rep=0.0), MR2Loss(K, lambda_rep=0.0, label_smoothing=0.2)
    for seed in (1, 2):
        logits, f, y = batch(seed=seed)
        plain(logits, f, y)
        smooth(logits, f, y)
    torch.testing.assert_close(smooth.sums, plain.sums)  # the uniform part is no evidence
    logits, f, y = batch(seed=3)
    per = per_class_ce(logits, plain.margins())
    expect = 0.8 * per.gather(1, y.unsqueeze(1)).squeeze(1) + 0.2 * per.mean(1)
    torch.testing.assert_close(smooth.eval()(logits, f, y), expect.mean().float())


def weighted_statistics(f, w, p):
    """Float64 by hand: per class weight, mean and mean squared p-norm deviation."""
    f, w = f.double(), w.double()
    weight = w.sum(0)
    mean = (w.t() @ f) / weight.unsqueeze(1)
    dev = torch.stack(
        [(w[:, k] * ((f - mean[k]).abs() ** p).sum(1) ** (2 / p)).sum() for k in range(K)]
    )
    return weight, mean, dev / weight


@pytest.mark.parametrize("p", [2.0, 5.0])
def test_statistics_of_mixed_rows_are_weighted_by_the_mix(p):
    logits, f, y = batch()
    lam = torch.linspace(0.1, 0.9, len(y))
    smoothing = 0.1  # as timm adds it: (1 - eps) mix + eps / K
    t = mixed(y, lam) * (1 - smoothing) + smoothing / K
    loss_fn = MR2Loss(K, norm_p=p)
    loss_fn(logits, f, t)
    weight, mean, dev = weighted_statistics(f, mixed(y, lam), p)
    torch.testing.assert_close(loss_fn.weight, weight)
    torch.testing.assert_close(loss_fn.class_mean, mean)
    torch.testing.assert_close(loss_fn.sq_dev[:, 0], dev, rtol=1e-5, atol=1e-6)


def test_representation_term_is_its_expectation_over_the_classes():
    loss_fn = warmed(rep_temperature=1.0, logit_margins=False, lambda_rep=1.0)
    logits, f, y = batch(seed=3)
    f = f / 3
    w = mixed(y, torch.linspace(0.2, 0.8, len(y))).double()
    s_bar = float(loss_fn.s_bar())
    rep = torch.zeros(len(y), dtype=torch.float64)
    for i in range(len(y)):
        for k in range(K):
            inner = sum(
                w[j, k] * torch.exp(((f[i] - f[j]).double().square().sum()) - 2 * s_bar)
                for j in range(len(y))
                if j != i
            )
            rep[i] += w[i, k] * torch.log1p(inner)
    ce = -(w * logits.double().log_softmax(1)).sum(1)
    got = copy.deepcopy(loss_fn)
    got.reduction = "none"
    torch.testing.assert_close(got(logits, f, w.float()), (ce + rep).float(), rtol=1e-4, atol=1e-5)


def test_chunked_expected_margin_ce_gradient(monkeypatch):
    monkeypatch.setattr(mr2_soft, "CHUNK_ELEMENTS", 7)  # several chunks of classes
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, K, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.rand(4, K, dtype=torch.float64, generator=g).softmax(1)
    inv = torch.rand(K, dtype=torch.float64, generator=g) + 0.5
    assert len(mr2_soft._chunks(z)) > 1
    assert torch.autograd.gradcheck(lambda x: mr2_soft.ExpectedMarginCE.apply(x, t, inv), (z,))
    plain = (t * ((z.unsqueeze(1) * inv.unsqueeze(1)).logsumexp(2) - z * inv)).sum(1)
    torch.testing.assert_close(mr2_soft.ExpectedMarginCE.apply(z, t, inv), plain)


def test_timm_and_torchvision_mixup_targets_train_mr2():
    images = torch.rand(8, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    timm_mix = Mixup(mixup_alpha=1.0, label_smoothing=0.1, mode="elem", num_classes=K)
    torch.manual_seed(0)
    _, t_timm = timm_mix(images, y)
    _, t_tv = v2.CutMix(num_classes=K)(images, y)
    for t in (t_timm, t_tv):
        assert t.shape == (8, K)
        w = mr2_soft.class_evidence(t)  # the mix without the smoothing floor
        assert bool((w[torch.arange(8), y] > 0).all()) and torch.allclose(w.sum(1), torch.ones(8))
        assert bool((w > 0).sum(1).le(2).all())
        f = torch.randn(8, 6, requires_grad=True)
        loss = MR2Loss(K)(f @ torch.randn(6, K), f, t)
        loss.backward()
        assert torch.isfinite(loss) and f.grad is not None


def test_sample_weights_apply_to_soft_rows():
    logits, f, y = batch()
    t = mixed(y, torch.full((len(y),), 0.3))
    w = torch.rand(len(y), generator=torch.Generator().manual_seed(1))
    weighted = warmed()(logits, f, t, sample_weight=w)
    per = warmed(reduction="none")(logits, f, t)
    torch.testing.assert_close(weighted, (w * per).sum() / w.sum())


def test_bad_soft_targets_are_errors_naming_the_fix(monkeypatch):
    logits, f, y = batch()
    t = F.one_hot(y, K).float()
    with pytest.raises(ValueError, match=r"FocalLoss takes class indices.*mixed_loss"):
        losses.create("focal", num_classes=K)(logits, f, t)
    with pytest.raises(ValueError, match="rows summing to 1"):
        MR2Loss(K)(logits, f, t * 2)
    with pytest.raises(ValueError, match="entries >= 0"):
        MR2Loss(K)(logits, f, t - 0.1 * F.one_hot(y.flip(0), K))
    with pytest.raises(ValueError, match="3 columns, expected num_classes = 5"):
        MR2Loss(K)(logits, f, t[:, :3])
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        MR2Loss(K, label_smoothing=1.0)
    monkeypatch.setattr(distributed, "is_distributed", lambda group: True)
    with pytest.raises(ValueError, match="gather_features is not supported with soft"):
        MR2Loss(K, gather_features=True)(logits, f, t)
