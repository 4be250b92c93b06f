"""One registry helper behind losses, models, backbones, datasets and procedures: the same
lookup, option listing and errors everywhere."""

from functools import partial

import pytest

from mr2 import backbones, data, models
from mr2._registry import Registry, keyword_options
from mr2.engine import executors, loggers, procedures, schedule
from mr2.losses.registry import LOSSES


def test_every_kind_uses_the_one_registry():
    registries = {
        "loss": (LOSSES, "mr2", "mr3"),
        "model": (models.MODELS, "resnet32", "resnet33"),
        "backbone": (backbones.BACKBONES, "clip", "clipp"),
        "dataset": (data.LOADERS, "fashion_mnist", "fashion_mnis"),
        "procedure": (procedures.PROCEDURES, "jtt", "jt"),
        "executor": (executors.EXECUTORS, "pool", "pol"),
        "logger": (loggers.LOGGERS, "tensorboard", "tensorbord"),
        "optimiser": (schedule.OPTIMISERS, "adamw", "adamv"),
        "schedule": (schedule.SCHEDULES, "cosine", "cosin"),
    }
    for kind, (registry, name, typo) in registries.items():
        assert isinstance(registry, Registry) and registry.kind == kind
        assert name in registry and name in registry.available()
        with pytest.raises(
            ValueError, match=rf"unknown {kind} '{typo}' \(did you mean '{name}'\?\)"
        ):
            registry.entry(typo)
        with pytest.raises(
            ValueError, match=rf"{kind} '{name}' does not take option\(s\) \['zz'\]"
        ):
            registry.check_options(name, {"zz": 1})
        # the same message, without raising, for config checks
        assert registry.problems(typo, "here") == [f"here: {registry.unknown(typo)}"]
        assert f"unknown {kind} '{typo}' (did you mean '{name}'?)" in registry.unknown(typo)
    assert models.options("resnet32") == {
        "depth",
        "width",
        "shortcut",
    }  # ResNetCifar(shape, K, ...)
    assert "lambda_rep" in LOSSES.options("mr2") and "lambda_rep" not in LOSSES.options("mr2_logit")
    assert procedures.PROCEDURES.options("jtt") == set(procedures.JTT.defaults)


def test_registry_by_hand():
    def factory(k, *, width=2, depth=1, **kwargs):
        """A thing. More text."""
        return (k, width, depth)

    reg = Registry("widget", exclude=("k",))
    reg.register("a", factory, defaults={"depth": 5})
    reg.register("b", partial(factory, width=9), "bound width")
    assert reg.describe() == {"a": "A thing. More text.", "b": "bound width"}
    assert reg.options("a") == {"width", "depth"} and reg.options("b") == {"depth"}
    assert reg.create("a", 3) == (3, 2, 5) and reg.create("a", 3, depth=1) == (3, 2, 1)
    with pytest.raises(ValueError, match=r"'wdth': did you mean 'width'"):
        reg.create("a", 3, wdth=4)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", factory)
    assert dict(reg) == {"a": factory, "b": reg["b"]} and len(reg) == 2
    assert keyword_options(lambda x, *a, y=1, **k: 0, set()) == {"x", "y"}


def test_a_missing_package_is_named_without_raising(monkeypatch):
    reg = Registry("thing")
    reg.register("plain", lambda: 1, "needs nothing")
    reg.register("fancy", lambda: 2, "needs two", needs=("json", "mr2_no_such_package"))
    assert reg.problems("plain", "thing.name") == []
    assert reg.missing_package("fancy") == "mr2_no_such_package"
    assert reg.problems("fancy", "thing.name", "pip install it") == [
        "thing.name = 'fancy' needs mr2_no_such_package: pip install it"
    ]
    assert reg.problems("fanci", "thing.name") == [
        "thing.name: unknown thing 'fanci' (did you mean 'fancy'?); available: fancy, plain"
    ]
