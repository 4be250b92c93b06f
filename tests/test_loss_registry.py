"""One shared tester over every registered loss: the calling convention holds for all."""

import pytest
import torch
from torch import nn

from mr2 import losses

NAMES = losses.available()
K, D = 4, 6


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(5, D), nn.Linear(D, K)

    def forward(self, x):
        f = torch.tanh(self.body(x))
        return self.head(f), f


def inputs(seed=0, b=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 5, generator=g), torch.arange(b).remainder(K)


def test_registry_lists_everything_asked_for():
    expected = {
        "ce",
        "label_smoothing",
        "focal",
        "ldam",
        "logit_adjustment",
        "balanced_softmax",
        "vs",
        "cdb",
        "group_dro",
        "center",
        "supcon",
        "gce",
        "mr2",
        "mr2_logit",
        "mr2_rep",
    }
    assert expected <= set(NAMES)
    assert all(losses.describe(n) for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_finite_gradients_float32(name):
    torch.manual_seed(0)
    model, loss_fn = Tiny(), losses.create(name, num_classes=K)
    x, y = inputs()
    loss = loss_fn(*model(x), y)
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_autocast_close_to_float32(name):
    torch.manual_seed(0)
    model = Tiny()
    x, y = inputs()
    out = {}
    for amp in (False, True):
        loss_fn = losses.create(name, num_classes=K)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits, f = model(x)
            out[amp] = loss_fn(logits, f, y)
    assert out[True].dtype == torch.float32 and torch.isfinite(out[True])
    torch.testing.assert_close(out[True], out[False], rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    a = losses.create(name, num_classes=K)
    for s in range(2):
        x, y = inputs(seed=s)
        a(*model(x), y)
    if hasattr(a, "update_difficulty"):
        a.update_difficulty(torch.tensor([0.9, 0.4, 0.7, 0.2]))
    torch.save(a.state_dict(), tmp_path / "s.pt")
    b = losses.create(name, num_classes=K)
    b.load_state_dict(torch.load(tmp_path / "s.pt"))
    x, y = inputs(seed=5)
    with torch.no_grad():
        logits, f = model(x)
    assert torch.equal(a(logits, f, y), b(logits, f, y))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda z, f, y: (z, f, y + K), r"targets must lie in \[0, 4\)"),
        (lambda z, f, y: (z.fill_(float("nan")), f, y), "logits contains NaN"),
        (lambda z, f, y: (z[:, :3], f, y), "num_classes = 4"),
        (lambda z, f, y: (z[:0], f[:0], y[:0]), "empty"),
        (lambda z, f, y: (z, f, y.float()), "integer"),
        (lambda z, f, y: (z, f, y[:5]), "batch sizes differ"),
    ],
)
def test_bad_input_raises_value_error(name, mutate, match):
    loss_fn = losses.create(name, num_classes=K)
    z, f = torch.randn(8, K), torch.randn(8, D)
    y = torch.arange(8) % K
    with pytest.raises(ValueError, match=match):
        loss_fn(*mutate(z, f, y))


@pytest.mark.parametrize("name", NAMES)
def test_bad_sample_weight(name):
    loss_fn = losses.create(name, num_classes=K)
    z, f, y = torch.randn(8, K), torch.randn(8, D), torch.arange(8) % K
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        loss_fn(z, f, y, sample_weight=-torch.ones(8))
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        loss_fn(z, f, y, sample_weight=torch.ones(3))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_integer_labels_of_any_width_give_the_int64_loss(name, dtype):
    x, y = inputs()
    model = Tiny()
    logits, features = model(x)
    want = losses.create(name, num_classes=K)(logits, features, y)
    got = losses.create(name, num_classes=K)(logits, features, y.to(dtype))
    assert torch.equal(got, want)


def test_mr2_options_are_range_checked_without_building_the_loss(monkeypatch):
    from mr2.losses import registry

    monkeypatch.setattr(registry, "create", lambda *a, **k: pytest.fail("the loss was built"))
    assert losses.problems("mr2", {"ema_decay": 1.5}) == [
        "loss.options: ema_decay must lie in [0, 1), got 1.5"
    ]
    assert losses.problems("mr2_logit", {"c_bar": 0.0}, where="methods.x") == [
        "methods.x.options: c_bar must be > 0 and finite, got 0.0"
    ]
    assert losses.problems("mr2_rep", {}, preset="official") == []  # its fixed options kept
    assert losses.problems("mr2", {"ema_decay": "high"}) == [
        "loss.options.ema_decay: expected float, got 'high'"
    ]


def test_mr2loss_raises_what_the_check_reports():
    from mr2.losses.mr2 import options as mr2_options

    bad_values = [
        {"ema_decay": 1.0}, {"norm_p": 0.5}, {"norm_p": float("inf")}, {"lambda_rep": -1.0},
        {"c_bar": float("nan")}, {"rep_temperature": "hot"}, {"rep_temperature": 0.0},
        {"margin_statistic": "median"}, {"label_smoothing": 1.0}, {"rep_reduction": "batch"},
        {"reduction": "max"},
    ]  # fmt: skip
    for bad in bad_values:
        (message,) = mr2_options.problems(bad)
        with pytest.raises(ValueError) as err:
            losses.MR2Loss(10, **bad)
        assert str(err.value) == message
    assert mr2_options.problems({}) == []  # the defaults are in range


def test_a_loss_without_a_check_of_its_own_is_built_on_dummy_sizes():
    assert losses.problems("focal", {"gamma": -1.0}) == [
        "loss.options: gamma must be >= 0, got -1.0"
    ]
    assert losses.problems("mr3", {}) == [
        "loss.name: unknown loss 'mr3' (did you mean 'mr2'?); available: "
        + ", ".join(losses.available())
    ]
