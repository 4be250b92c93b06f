"""with_features: (logits, features) from torchvision, timm, mr2 and plain models; logits
bit-identical to the unwrapped model; features the input of the final linear layer."""

import pytest
import timm
import torch
from torch import nn
from torchvision import models as tvm

from mr2 import MR2Loss, with_features
from mr2 import models as mr2_models

TORCHVISION = [
    ("resnet18", "fc", 512),
    ("resnext50_32x4d", "fc", 2048),
    ("wide_resnet50_2", "fc", 2048),
    ("convnext_tiny", "classifier.2", 768),
    ("efficientnet_b0", "classifier.1", 1280),
    ("mobilenet_v3_small", "classifier.3", 1024),
    ("vgg11", "classifier.6", 4096),
    ("vit_b_16", "heads.head", 768),
    ("swin_t", "head", 768),
    ("densenet121", "classifier", 1024),
]
TIMM = [("resnet18", 512), ("vit_tiny_patch16_224", 192), ("convnext_atto", 320)]


def reference_features(model, head_name, x):
    """The head's input, recorded by hand with a hook: the independent reference."""
    seen = {}

    def record(module, inputs, output):
        seen["f"] = inputs[0]  # returns None: the output is left alone

    handle = model.get_submodule(head_name).register_forward_hook(record)
    logits = model(x)
    handle.remove()
    return logits, seen["f"]


@pytest.mark.parametrize(("name", "head", "width"), TORCHVISION)
def test_torchvision_models(name, head, width):
    torch.manual_seed(0)
    kwargs = {"image_size": 32} if name == "vit_b_16" else {}
    model = getattr(tvm, name)(num_classes=7, **kwargs).eval()
    x = torch.randn(2, 3, 32 if name == "vit_b_16" else 64, 32 if name == "vit_b_16" else 64)
    wrapped = with_features(model)
    assert wrapped.head_name == head
    logits, features = wrapped(x)
    ref_logits, ref_features = reference_features(model, head, x)
    assert torch.equal(logits, model(x)) and torch.equal(logits, ref_logits)
    assert features.shape == (2, width) and torch.equal(features, ref_features.flatten(1))
    torch.testing.assert_close(model.get_submodule(head)(features), logits)


@pytest.mark.parametrize(("name", "width"), TIMM)
def test_timm_models(name, width):
    torch.manual_seed(0)
    kwargs = {"img_size": 32} if "vit" in name else {}
    model = timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()
    x = torch.randn(2, 3, 32 if "vit" in name else 64, 32 if "vit" in name else 64)
    logits, features = with_features(model)(x)
    assert torch.equal(logits, model(x))
    assert features.shape == (2, width)
    assert torch.equal(model.get_classifier()(features), logits)


def test_features_carry_gradients_for_mr2():
    torch.manual_seed(0)
    model = with_features(tvm.resnet18(num_classes=4))
    logits, features = model(torch.randn(8, 3, 32, 32))
    loss = MR2Loss(4)(logits, features, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    loss.backward()
    assert model.model.layer1[0].conv1.weight.grad.abs().sum() > 0


def test_mr2_models_pass_through_and_explicit_head():
    mlp = mr2_models.create("mlp", (8,), 3)
    assert with_features(mlp) is mlp
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.Linear(5, 3))
    wrapped = with_features(net, head="2")
    logits, features = wrapped(torch.randn(2, 4))
    assert features.shape == (2, 6) and logits.shape == (2, 3)
    assert with_features(net).head_name == "3"  # the last Linear


def test_errors_name_the_candidates():
    with pytest.raises(ValueError, match=r"no nn.Linear layer"):
        with_features(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()))
    with pytest.raises(ValueError, match=r"head='1' is not an nn.Linear .* linear layers: \['0'\]"):
        with_features(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), head="1")

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.head = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(ValueError, match=r"several classifier candidates \['fc', 'head'\]"):
        with_features(TwoHeads())
    unused = with_features(TwoHeads(), head="head")
    with pytest.raises(RuntimeError, match="was not called"):
        unused(torch.randn(1, 4))


def test_state_dict_round_trip_with_the_unwrapped_model(tmp_path):
    torch.manual_seed(0)
    plain = tvm.resnet18(num_classes=3)
    wrapped = with_features(tvm.resnet18(num_classes=3))
    assert list(wrapped.state_dict()) == list(plain.state_dict())
    wrapped.load_state_dict(plain.state_dict())  # unwrapped -> wrapped
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(wrapped.eval()(x)[0], plain.eval()(x))
    torch.save(wrapped.state_dict(), tmp_path / "w.pt")
    again = tvm.resnet18(num_classes=3)
    again.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))  # and back
    assert torch.equal(again.eval()(x), plain(x))
    outer = nn.ModuleDict({"net": wrapped})  # nested: prefixes handled at any depth
    assert "net.fc.weight" in outer.state_dict()
    outer.load_state_dict(outer.state_dict())


@pytest.mark.slow
def test_compile_and_autocast():
    torch.manual_seed(0)
    model = with_features(tvm.resnet18(num_classes=3)).eval()
    x = torch.randn(2, 3, 32, 32)
    eager = model(x)
    compiled = torch.compile(model, backend="aot_eager")(x)
    torch.testing.assert_close(compiled[0], eager[0])
    torch.testing.assert_close(compiled[1], eager[1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, features = model(x)
    assert logits.dtype == torch.bfloat16 and features.shape == (2, 512)


def test_mr2_loss_refuses_the_logits_as_features():
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match="got the logits tensor as the features"):
        MR2Loss(3)(logits, logits, torch.tensor([0, 1, 2, 0]))


@pytest.mark.ddp
def test_ddp_wrapped_model_trains_like_one_process():
    import ddp
    import ddp_workers

    ranks = ddp.run(ddp_workers.with_features_worker, 2)
    single = ddp_workers.with_features_worker(0, 1)
    for r in ranks:
        for name, grad in single["grads"].items():
            torch.testing.assert_close(r["grads"][name], grad, rtol=1e-4, atol=1e-6)
