"""Mixed precision: statistics and loss are computed in float32 under autocast."""

import torch
from torch import nn

from mr2 import MR2Loss


class Net(nn.Module):
    def __init__(self, d_in=20, d=32, k=6):
        super().__init__()
        self.body, self.head = nn.Linear(d_in, d), nn.Linear(d, k)

    def forward(self, x):
        f = torch.relu(self.body(x)) * 8  # wide-ish raw distances
        return self.head(f), f


def run(net, x, y, autocast):
    loss_fn = MR2Loss(6, lambda_rep=0.5)
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits, f = net(x)
        loss = loss_fn(logits, f, y)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    return loss, grads, loss_fn


def test_bf16_autocast_finite_and_close_to_float32():
    torch.manual_seed(0)
    net, x, y = Net(), torch.randn(64, 20), torch.randint(0, 6, (64,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(x)[0].dtype == torch.bfloat16  # the inputs really are low precision
    loss16, g16, fn16 = run(net, x, y, autocast=True)
    loss32, g32, fn32 = run(net, x, y, autocast=False)
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16) and torch.isfinite(g16).all()
    assert fn16.class_mean.dtype == torch.float64  # statistics are float64 sums
    torch.testing.assert_close(loss16, loss32, rtol=3e-2, atol=3e-2)
    torch.testing.assert_close(fn16.margins(), fn32.margins(), rtol=2e-2, atol=2e-2)
    cos = torch.nn.functional.cosine_similarity(g16, g32, dim=0)
    assert cos > 0.99


def test_half_inputs_are_computed_in_float32_without_overflow():
    """Squared distances of ~1e5 overflow float16 (max 65504); the loss must not."""
    f = (torch.randn(32, 64) * 40).half().requires_grad_(True)
    logits = (torch.randn(32, 4) * 5).half()
    y = torch.randint(0, 4, (32,))
    loss = MR2Loss(4, lambda_rep=1.0)(logits, f, y)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(f.grad).all()
