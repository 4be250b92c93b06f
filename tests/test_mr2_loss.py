"""MR2Loss: the module's state handling, invariances and errors."""

import pytest
import torch
import torch.nn.functional as F

import references as ref
from mr2 import MR2Loss, losses
from mr2 import functional as MF


def data(b=40, k=5, d=8, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, generator=g, dtype=dtype) + torch.arange(d, dtype=dtype) / d
    f = f * (1 + torch.arange(b, dtype=dtype).remainder(k).unsqueeze(1))  # class-dependent spread
    y = torch.arange(b).remainder(k)[torch.randperm(b, generator=g)]
    logits = f @ torch.randn(d, k, generator=g, dtype=dtype)
    return logits, f, y


def test_no_statistics_and_no_rep_term_is_exactly_cross_entropy():
    logits, f, y = data()
    loss_fn = MR2Loss(5, lambda_rep=0.0, reduction="none").eval()  # eval: margins stay c_bar = 1
    assert torch.equal(loss_fn(logits, f, y), F.cross_entropy(logits, y, reduction="none"))


def test_forward_equals_functional_composition():
    logits, f, y = data()
    loss_fn = MR2Loss(5, lambda_rep=0.3, c_bar=1.2, rep_temperature=4.0)
    got = loss_fn(logits, f, y)  # training mode: statistics of this batch are used
    count, norm_sq, dev = ref.class_statistics(f, y, 5)
    gamma = ref.margins(norm_sq, dev, [c > 0 for c in count], 1.2)
    s_bar = sum(dev) / 5
    expect = [
        a + 0.3 * b
        for a, b in zip(
            ref.logit_margin_ce(logits, y, gamma),
            ref.representation_margin(f, y, s_bar, 4.0),
            strict=True,
        )
    ]
    torch.testing.assert_close(
        got.double(), torch.tensor(expect, dtype=torch.float64).mean(), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(loss_fn.margins().double(), torch.tensor(gamma, dtype=torch.float64))
    torch.testing.assert_close(loss_fn.s_bar().double(), torch.tensor(s_bar, dtype=torch.float64))


def test_running_statistics_match_weighted_reference_over_steps():
    logits, f, y = data(b=60, dtype=torch.float64)
    decay = 0.9
    loss_fn = MR2Loss(5, ema_decay=decay).double()
    for part in (slice(0, 20), slice(20, 40), slice(40, 60)):
        loss_fn(logits[part], f[part], y[part])
    weights = [decay ** (2 - i // 20) for i in range(60)]  # every class is in every part
    for c, (w, mu, var) in ref.weighted_statistics(f, y, weights, 5).items():
        torch.testing.assert_close(loss_fn.weight[c].item(), w)
        torch.testing.assert_close(loss_fn.class_mean[c], torch.tensor(mu, dtype=torch.float64))
        torch.testing.assert_close(loss_fn.sq_dev[c, 1].item(), var)


def test_first_observation_initialises_and_unseen_classes_get_c_bar():
    logits, f, y = data(k=6)
    keep = y < 4
    loss_fn = MR2Loss(6, c_bar=2.0, ema_decay=0.5)
    loss_fn(logits[keep], f[keep], y[keep])
    count, _norm_sq, dev = MF.class_statistics(f[keep], y[keep], 6)
    torch.testing.assert_close(loss_fn.sq_dev[:, 0].float(), dev)  # float32 reference
    gamma = loss_fn.margins()
    assert torch.equal(gamma[4:], torch.full((2,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(gamma[:4].mean(), torch.tensor(2.0, dtype=torch.float64))
    assert torch.equal(loss_fn.seen(), count > 0)


def test_batch_permutation_changes_nothing():
    logits, f, y = data()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(3))
    a, b = MR2Loss(5, reduction="none"), MR2Loss(5, reduction="none")
    la, lb = a(logits, f, y), b(logits[perm], f[perm], y[perm])
    torch.testing.assert_close(la[perm], lb)
    torch.testing.assert_close(a.margins(), b.margins())
    torch.testing.assert_close(a.s_bar(), b.s_bar())


def test_state_dict_round_trip_resumes_identically(tmp_path):
    batches = [data(seed=s) for s in range(5)]
    a = MR2Loss(5, ema_decay=0.7)
    for batch in batches[:2]:
        a(*batch)
    torch.save(a.state_dict(), tmp_path / "loss.pt")
    b = MR2Loss(5, ema_decay=0.7)  # fresh: class_mean not yet sized
    b.load_state_dict(torch.load(tmp_path / "loss.pt"))
    for batch in batches[2:]:
        assert torch.equal(a(*batch), b(*batch))
    for name, buf in a.state_dict().items():
        assert torch.equal(buf, b.state_dict()[name]), name
    with pytest.raises(ValueError, match="classes"):
        MR2Loss(7).load_state_dict(a.state_dict())


def test_eval_mode_changes_no_state():
    logits, f, y = data()
    loss_fn = MR2Loss(5)
    loss_fn(logits, f, y)
    before = {k: v.clone() for k, v in loss_fn.state_dict().items()}
    loss_fn.eval()
    out1 = loss_fn(*data(seed=9))
    out2 = loss_fn(*data(seed=9))
    assert torch.equal(out1, out2)
    for k, v in loss_fn.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_buffers_follow_to_and_double():
    loss_fn = MR2Loss(5)
    loss_fn(*data())
    double = loss_fn.double()
    assert double.class_mean.dtype == torch.float64 and double.margins().dtype == torch.float64
    logits, f, y = data(dtype=torch.float64)
    assert double(logits, f, y).dtype == torch.float64


def test_gradcheck_module_float64():
    _logits, f, y = data(b=12, d=4, dtype=torch.float64)
    f = f.detach().requires_grad_(True)
    w = torch.randn(4, 5, dtype=torch.float64)
    loss_fn = MR2Loss(5, lambda_rep=0.5, rep_temperature=10.0).double()
    loss_fn(f @ w, f, y)  # fill statistics, then check the gradient with statistics frozen
    loss_fn.eval()
    assert torch.autograd.gradcheck(lambda x: loss_fn(x @ w, x, y), (f,))


def test_official_preset_settings():
    loss_fn = MR2Loss.from_preset("official", 100, feature_dim=512)
    assert loss_fn.norm_p == 5.0 and loss_fn.ema_decay == 0.999
    assert loss_fn.rep_temperature == 5120.0
    assert loss_fn.lambda_rep == pytest.approx(0.1 * 512 / 10 / 100)
    assert loss_fn.rep_reduction == "class"
    assert MR2Loss.from_preset("paper", 10, lambda_rep=0.2).lambda_rep == 0.2
    with pytest.raises(ValueError, match="feature_dim"):
        MR2Loss.from_preset("official", 100)
    with pytest.raises(ValueError, match="unknown preset"):
        MR2Loss.from_preset("nope", 100)
    clip = MR2Loss.from_preset("authors_clip", 37, feature_dim=512)  # Pets: 37 classes
    assert clip.c_bar == pytest.approx(1000 / 37) and clip.rep_temperature == 5120.0
    assert clip.norm_p == 5.0 and clip.rep_reduction == "class"


def test_class_rep_reduction_is_sum_over_classes_of_class_means():
    """The authors' reduction: sum_k mean_{i in k} l_s(i), hand-assembled from the loop ref."""
    logits, f, y = data(b=23)
    a = MR2Loss(5, lambda_rep=1.0, rep_reduction="class").eval()
    b = MR2Loss(5, lambda_rep=0.0).eval()
    rep = ref.representation_margin(f, y, 0.0, 1.0)
    per_class = [[r for r, c in zip(rep, y.tolist(), strict=True) if c == k] for k in range(5)]
    expect = sum(sum(v) / len(v) for v in per_class if v)
    got = a(logits, f, y) - b(logits, f, y)
    torch.testing.assert_close(
        got.double(), torch.tensor(expect, dtype=torch.float64), rtol=1e-5, atol=1e-5
    )


def test_official_preset_s_bar_is_two_norm():
    """Defect 3 of the authors' code: s_bar must be in the units of the 2-norm distances."""
    logits, f, y = data()
    loss_fn = MR2Loss.from_preset("official", 5, feature_dim=8)
    loss_fn(logits, f, y)
    _, _, dev2 = MF.class_statistics(f, y, 5, norm_p=2.0)
    _, _, dev5 = MF.class_statistics(f, y, 5, norm_p=5.0)
    torch.testing.assert_close(loss_fn.s_bar().float(), dev2.mean())
    torch.testing.assert_close(loss_fn.sq_dev[:, 0].float(), dev5)


def test_forward_is_free_of_host_syncs_without_validation(monkeypatch):
    loss_fn = MR2Loss(5, validate=False)
    logits, f, y = data()
    f.requires_grad_(True)

    def refuse(*_a, **_k):
        raise AssertionError("host sync inside forward")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    loss_fn(logits, f, y).backward()
    monkeypatch.undo()
    assert torch.isfinite(f.grad).all()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.randn(4, 6), torch.randn(4, 3), torch.zeros(4).long()), "num_classes = 5"),
        ((torch.randn(4, 5), torch.randn(4), torch.zeros(4).long()), "features must be 2-D"),
        ((torch.randn(4, 5), torch.randn(3, 3), torch.zeros(4).long()), "batch sizes differ"),
        ((torch.randn(4, 5), torch.randn(4, 3), torch.zeros(3).long()), "batch sizes differ"),
        ((torch.randn(4, 5), torch.randn(4, 3), torch.zeros(4)), "integer"),
        ((torch.randn(4, 5), torch.randn(4, 3), torch.tensor([0, 1, 5, 2])), r"\[0, 5\)"),
        ((torch.randn(4, 5), torch.randn(4, 3), torch.tensor([0, -1, 1, 2])), r"\[0, 5\)"),
        ((torch.full((4, 5), float("inf")), torch.randn(4, 3), torch.zeros(4).long()), "logits"),
        ((torch.randn(4, 5), torch.full((4, 3), float("nan")), torch.zeros(4).long()), "features"),
        ((torch.randn(0, 5), torch.randn(0, 3), torch.zeros(0).long()), "empty"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        MR2Loss(5)(*args)


def test_dimension_change_is_refused():
    loss_fn = MR2Loss(5)
    loss_fn(*data(d=8))
    with pytest.raises(ValueError, match="columns"):
        loss_fn(*data(d=6))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"c_bar": 0.0}, "c_bar"),
        ({"c_bar": -1.0}, "c_bar"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"ema_decay": -0.1}, "ema_decay"),
        ({"rep_temperature": 0.0}, "rep_temperature"),
        ({"lambda_rep": -0.1}, "lambda_rep"),
        ({"lambda_rep": float("nan")}, "lambda_rep"),
        ({"norm_p": 0.5}, "norm_p"),
        ({"reduction": "avg"}, "reduction"),
        ({"rep_reduction": "batch"}, "rep_reduction"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MR2Loss(5, **kwargs)
    with pytest.raises(ValueError, match="num_classes"):
        MR2Loss(0)


@pytest.mark.parametrize("validate", [True, False])
def test_overflowing_batch_leaves_the_statistics_untouched(validate):
    """Features whose squared norms overflow float32 (x 1e20) must not poison the state:
    refused with a ValueError (validate) or skipped (validate=False); later batches see the
    margins of the earlier ones."""
    loss_fn = MR2Loss(5, validate=validate)
    logits, f, y = data()
    loss_fn(logits, f, y)
    before = {k: v.clone() for k, v in loss_fn.state_dict().items()}
    if validate:
        with pytest.raises(ValueError, match="running class statistics non-finite"):
            loss_fn(logits, f * 1e20, y)
    else:
        loss_fn(logits, f * 1e20, y)
    for key, value in loss_fn.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.isfinite(loss_fn.margins()).all()
    assert torch.isfinite(loss_fn(logits, f, y))


def test_second_derivative_is_correct():
    """create_graph=True: Hessian-vector products of the whole loss (representation term
    included) against finite differences, in float64."""
    logits, f, y = data(b=12, k=3, d=4, dtype=torch.float64)
    loss_fn = MR2Loss(3, lambda_rep=0.5, rep_temperature=4.0).double()
    loss_fn(logits, f, y)  # statistics from one batch, then fixed (eval)
    loss_fn.eval()
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)

    def fn(feats, weight):
        return loss_fn(feats @ weight, feats, y)

    feats = f.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(fn, (feats, w))
    from mr2.representation import representation_margin

    s_bar = torch.tensor(0.3, dtype=torch.float64)
    cols = torch.randn(20, 4, dtype=torch.float64, requires_grad=True)
    col_y = torch.arange(20) % 3
    assert torch.autograd.gradgradcheck(lambda a: representation_margin(a, y, s_bar, 2.0), (feats,))
    assert torch.autograd.gradgradcheck(  # rows against a larger (gathered) batch
        lambda a, c: representation_margin(a, col_y[3:15], s_bar, 2.0, (c, col_y, 3)),
        (feats, cols),
    )


def test_auto_temperature_is_scale_free():
    """rep_temperature="auto": scaling every feature by a constant leaves the loss (both
    terms) and its margins unchanged; float64 reference of the exponent (d - 2 s) / (2 s)."""
    logits, f, y = data(dtype=torch.float64)
    values = []
    for c in (1.0, 7.0, 0.01):
        loss_fn = MR2Loss(5, lambda_rep=0.5, rep_temperature="auto").double()
        values.append((loss_fn(logits, f * c, y), loss_fn.margins()))
    for value, margins in values[1:]:
        torch.testing.assert_close(value, values[0][0])
        torch.testing.assert_close(margins, values[0][1])
    loss_fn = MR2Loss(5, lambda_rep=1.0, logit_margins=False, rep_temperature="auto").double()
    total = loss_fn(logits, f, y)
    s = loss_fn.s_bar()
    d = torch.cdist(f, f).square()
    z = (d - 2 * s) / (2 * s)
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    rep = torch.log1p((z.exp() * same).sum(1))
    expect = F.cross_entropy(logits, y, reduction="none") + rep
    torch.testing.assert_close(total, expect.mean())
    literal = MR2Loss(5, lambda_rep=0.5, rep_temperature=1.0).double()  # the paper's raw form
    assert not torch.allclose(
        literal(logits, f * 7, y),
        MR2Loss(5, lambda_rep=0.5, rep_temperature=1.0).double()(logits, f, y),
    )
    default = MR2Loss(5)  # the default is the scale-free form, not the raw one
    assert default.rep_temperature == "auto" and default.lambda_rep == 0.03
    paper = MR2Loss.from_preset("paper", 5)
    assert (paper.rep_temperature, paper.lambda_rep) == (1.0, 0.1)
    with pytest.raises(ValueError, match="'auto'"):
        MR2Loss(5, rep_temperature="hot")


@pytest.mark.parametrize("direction", ["increasing", "decreasing"])
@pytest.mark.parametrize("statistic", ["paper", "centered", "spread"])
def test_margin_statistics_against_float64_references(statistic, direction):
    logits, f, y = data(dtype=torch.float64)
    f = f.relu() + 0.5  # ReLU-like features: ||mu_k||^2 dominates the paper's statistic
    options = dict(margin_statistic=statistic, margin_direction=direction, ema_decay=0.0)
    loss_fn = MR2Loss(5, **options).double()
    loss_fn(logits, f, y)
    mu = torch.stack([f[y == k].mean(0) for k in range(5)])
    spread = torch.stack([(f[y == k] - mu[k]).square().sum(1).mean() for k in range(5)])
    counts = torch.bincount(y, minlength=5).double()
    center = (counts[:, None] * mu).sum(0) / counts.sum()
    a = {
        "paper": mu.square().sum(1) + spread,
        "centered": (mu - center).square().sum(1) + spread,
        "spread": spread,
    }[statistic]
    root = a.pow(1 / 3 if direction == "increasing" else -1 / 3)
    torch.testing.assert_close(loss_fn.margins(), root / root.mean())
    z = logits / loss_fn.margins()[y, None]  # the logit term is CE of logits / gamma_y
    loss_fn.lambda_rep = 0.0
    torch.testing.assert_close(loss_fn.eval()(logits, f, y), F.cross_entropy(z, y))
    shifted = MR2Loss(5, **options).double()
    shifted(logits, f + 3.0, y)  # a constant shift of every feature
    moved = not torch.allclose(shifted.margins(), loss_fn.margins())
    assert moved == (statistic == "paper")  # centred and spread statistics ignore a shift


@pytest.mark.integration  # trains (a tiny run)
def test_auto_temperature_and_margin_statistic_from_a_config(tmp_path):
    from helpers import tiny_config
    from mr2.engine.train import train

    cfg = tiny_config(
        loss__name="mr2",
        loss__options={"rep_temperature": "auto", "margin_statistic": "centered"},
    )
    result = train(cfg, tmp_path / "r", show_progress=False)
    assert result.identity["loss.options.rep_temperature"] == "auto"
    with pytest.raises(ValueError, match="margin_statistic must be"):
        train(
            tiny_config(loss__name="mr2", loss__options={"margin_statistic": "median"}),
            tmp_path / "bad",
            show_progress=False,
        )


@pytest.mark.parametrize(
    "how", [{"backend": "aot_eager"}, {"mode": "reduce-overhead"}], ids=["aot_eager", "reduce"]
)
def test_compiles_as_one_graph_without_validation(how):
    """``torch.compile(MR2Loss(validate=False), fullgraph=True)`` traces the whole loss
    (statistics update, margins, representation term) without a graph break, also with
    ``mode="reduce-overhead"`` (CUDA graphs on a GPU; inductor's code here), and the
    compiled loss gives eager's values, gradients and statistics over three steps."""
    eager, compiled = MR2Loss(4, validate=False), MR2Loss(4, validate=False)
    run = torch.compile(compiled, fullgraph=True, **how)
    for step in range(3):
        logits, f, y = data(b=24, k=4, d=6, seed=step)
        grads = []
        for fn in (eager, run):
            x, z = f.clone().requires_grad_(True), logits.clone().requires_grad_(True)
            loss = fn(z, x, y)
            loss.backward()
            grads.append((loss, x.grad, z.grad))
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(value, compiled.state_dict()[key])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_module_keeps_float64_statistics(dtype):
    """loss.half() (as model.half() users do) must not give float16 statistics, which
    overflow and turned the first batch's loss into a silent NaN."""
    torch.manual_seed(0)
    feats = (torch.randn(32, 16) * 300).to(dtype)  # squared norms beyond float16's range
    logits, y = torch.randn(32, 5).to(dtype), torch.arange(32) % 5
    loss_fn = MR2Loss(5).to(dtype)
    assert all(getattr(loss_fn, n).dtype == torch.float64 for n in MR2Loss.STATISTICS)
    assert loss_fn.float().sums.dtype == torch.float64  # sums must not cancel in float32
    reference = MR2Loss(5)
    got, want = loss_fn(logits, feats, y), reference(logits.float(), feats.float(), y)
    assert torch.isfinite(got) and torch.allclose(got.float(), want, rtol=1e-3)


def test_an_overflowing_lambda_rep_is_named_not_blamed_on_the_logits():
    torch.manual_seed(0)
    feats, logits, y = torch.randn(16, 4) * 10, torch.randn(16, 3), torch.arange(16) % 3
    loss_fn = MR2Loss(3, lambda_rep=3e38)  # the term itself overflows float32
    with pytest.raises(ValueError, match=r"lambda_rep \(3e\+38\).*lower lambda_rep"):
        loss_fn(logits, feats, y)
    # a finite but absurd weight blows the model up; the next batch's error says why
    x = torch.randn(16, 4) * 10
    body, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 3)
    opt = torch.optim.SGD([*body.parameters(), *head.parameters()], lr=0.1)
    loss_fn = MR2Loss(3, lambda_rep=1e30)
    with pytest.raises(ValueError, match="lambda_rep"):
        for _ in range(5):
            f = body(x)
            opt.zero_grad()
            loss_fn(head(f), f, y).backward()
            opt.step()


@pytest.mark.parametrize("wide", [0, 1])
def test_spread_margins_follow_the_wide_class_both_ways_where_paper_margins_follow_the_norm(wide):
    """ReLU-like features: class 0 far from the origin and tight, class 1 near it; the wide
    (high-spread) class is ``wide``. "paper" gives the larger margin to the class of the
    larger ||mu||^2 + ||s||^2 (class 0 here), whatever the spread; "spread" gives it to the
    wide class, whichever that is (its direction is not assumed)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    f = torch.where(y[:, None] == 0, torch.full((200, 8), 6.0), torch.full((200, 8), 0.5))
    scale = torch.where(y == wide, 2.0, 0.1)[:, None]
    f = f + scale * torch.randn(200, 8, generator=g)
    logits = torch.randn(200, 2, generator=g)
    for statistic, larger in (("paper", 0), ("spread", wide)):
        for direction, which in (("increasing", larger), ("decreasing", 1 - larger)):
            loss_fn = MR2Loss(2, margin_statistic=statistic, margin_direction=direction)
            loss_fn(logits, f, y)
            assert int(loss_fn.margins().argmax()) == which, (statistic, direction)
    reversed_by_name = losses.create("mr2_reversed", num_classes=2)  # the registered variant
    reversed_by_name(logits, f, y)
    assert reversed_by_name.margin_direction == "decreasing"
    assert int(reversed_by_name.margins().argmax()) == 1
    with pytest.raises(ValueError, match="margin_direction must be 'increasing' or 'decreasing'"):
        MR2Loss(2, margin_direction="down")
