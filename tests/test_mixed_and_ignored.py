"""ignore_index (as F.cross_entropy's) and mixed targets (mixup / cutmix) for mr2's losses."""

import copy

import pytest
import torch
import torch.nn.functional as F

from mr2 import MR2Loss, losses


def batch(b=24, k=4, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, generator=g) * (1 + torch.arange(b).remainder(3).unsqueeze(1))
    y = torch.arange(b).remainder(k)
    return f @ torch.randn(d, k, generator=g), f, y


def test_ignore_index_matches_cross_entropy_and_leaves_statistics_alone():
    logits, f, y = batch()
    y_ignored = y.clone()
    y_ignored[::3] = -100
    ce = losses.create("ce", num_classes=4, ignore_index=-100)
    torch.testing.assert_close(ce(logits, None, y_ignored), F.cross_entropy(logits, y_ignored))
    keep = y_ignored != -100
    a, b = MR2Loss(4, ignore_index=-100), MR2Loss(4)
    torch.testing.assert_close(a(logits, f, y_ignored), b(logits[keep], f[keep], y[keep]))
    for key, value in b.state_dict().items():
        torch.testing.assert_close(a.state_dict()[key], value)  # ignored samples: no statistics
    none = MR2Loss(4, ignore_index=-100, reduction="none")(logits, f, y_ignored)
    assert none.shape == (24,) and bool((none[~keep] == 0).all())
    everything = torch.full_like(y, -100)
    assert float(MR2Loss(4, ignore_index=-100)(logits, f, everything)) == 0.0
    with pytest.raises(ValueError, match="is a class index"):
        MR2Loss(4, ignore_index=2)


def test_mixed_loss_is_the_two_label_decomposition():
    logits, f, y = batch()
    y_b = y.flip(0)
    ce = losses.create("ce", num_classes=4)
    expect = 0.3 * F.cross_entropy(logits, y) + 0.7 * F.cross_entropy(logits, y_b)
    torch.testing.assert_close(losses.mixed_loss(ce, logits, f, y, y_b, 0.3), expect)


def test_mixed_mr2_updates_statistics_once_from_the_dominant_labels():
    logits, f, y = batch()
    y_b = y.flip(0)
    warm_logits, warm_f, warm_y = batch(seed=1)
    loss_fn = MR2Loss(4, lambda_rep=0.3)
    loss_fn(warm_logits, warm_f, warm_y)
    reference = copy.deepcopy(loss_fn)
    mixed = losses.mixed_loss(loss_fn, logits, f, y, y_b, 0.3)  # y_b dominates
    reference.update_statistics(f, y_b)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loss_fn.state_dict()[key], value)
    reference.eval()  # the same margins, no further update
    expect = 0.3 * reference(logits, f, y) + 0.7 * reference(logits, f, y_b)
    torch.testing.assert_close(mixed, expect)
    plain, again = MR2Loss(4), MR2Loss(4)
    torch.testing.assert_close(
        losses.mixed_loss(plain, logits, f, y, y_b, 1.0), again(logits, f, y)
    )  # lam = 1: exactly the plain loss, statistics included
    torch.testing.assert_close(plain.class_mean, again.class_mean)
