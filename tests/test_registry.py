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
        "weights",  # every model's: a weights file (mr2.models.weights)
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


def test_an_entry_checks_option_names_then_types_then_its_own_ranges(monkeypatch):
    seen = []

    def factory(k, *, rate: float = 0.5, mode: str = "a", steps: int | None = None,
                limit: float | str = "auto"):  # fmt: skip
        return k

    def below_one(_name, options):
        seen.append(dict(options))
        rate = options.get("rate", 0.5)
        return [] if rate < 1 else [f"rate must be below 1, got {rate}"]

    reg = Registry("widget", exclude=("k",))
    reg.register("w", factory, check=below_one)
    assert reg.option_problems("w", {"rte": 0.1}, "w.options") == [
        "w.options.rte: widget 'w' does not take it (did you mean 'rate'?); "
        "accepted: ['limit', 'mode', 'rate', 'steps']"
    ]
    assert reg.option_problems("w", {"rate": "x", "steps": 1.5, "mode": 1, "limit": 3}, "o") == [
        "o.rate: expected float, got 'x'",
        "o.steps: expected int or None, got 1.5",
        "o.mode: expected str, got 1",
    ]  # in the order given
    assert seen == []  # the entry's own check runs only on known names of the right types
    assert reg.option_problems("w", {"rate": 2, "limit": "auto"}, "o") == [
        "o: rate must be below 1, got 2"
    ]
    assert reg.option_problems("w", {"rate": 0.2, "steps": None, "limit": 0.3}, "o") == []
    # the signature is read once per entry, however often the options are asked for
    import inspect

    reads = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda f, *a, **k: reads.append(f) or real(f))
    for _ in range(3):
        reg.options("w")
        reg.option_problems("w", {"rate": 0.1}, "o")
        reg.create("w", 1, rate=0.1)
    assert reads == []


def test_a_family_entry_holds_every_name_with_its_prefix():
    reg = Registry("model")
    reg.register("own", lambda *, width=1: ("own", width), "mine")
    reg.register(
        "lib:",
        lambda name, *args, **options: (name, args, options),
        "a library's",
        family=True,
        needs="json",
        member_problem=lambda n: None if n == "lib:a" else f"lib has no {n[4:]!r}",
        check=lambda _n, o: [] if o.get("size", 1) > 0 else ["size must be > 0"],
    )
    assert reg.available() == ["own"] and reg.families() == ["lib:"]
    assert "lib:a" in reg and "lib:zz" in reg and "other:a" not in reg and "lib" not in reg
    assert reg.create("lib:a", 3, size=2) == ("lib:a", (3,), {"size": 2})  # the name first
    assert reg.problems("lib:b", "model.name") == ["model.name: lib has no 'b'"]
    assert reg.problems("lib:a", "model.name") == []
    assert reg.option_problems("lib:a", {"anything": 1}, "o") == []  # names go unchecked
    assert reg.option_problems("lib:a", {"size": 0}, "o") == ["o: size must be > 0"]
    assert reg.unknown("owm", "model.name", also=["clip"]) == (
        "model.name: unknown model 'owm' (did you mean 'own'?); available: clip, own, or lib:<name>"
    )
    assert reg.describe() == {"own": "mine", "lib:<name>": "a library's"}


def test_option_types_come_from_real_annotations_too():
    """A plug-in module without ``from __future__ import annotations`` annotates with the
    types themselves: ``epsilon: float`` with no default must still refuse "abc"."""
    import typing

    from mr2._registry import signature_options

    def plugin(
        num_classes,
        *,
        epsilon: float,
        k: int | None = None,
        s: typing.Optional[str] = None,  # noqa: UP045 - the older spelling is what is tested
    ):
        return None

    spec = signature_options(plugin, {"num_classes"})
    assert spec["epsilon"].kinds == ("float",)
    assert spec["k"].kinds == ("int", "None") and spec["s"].kinds == ("str", "None")
    registry = Registry("loss")
    registry.register("plugin", plugin)
    problems = registry.option_problems("plugin", {"epsilon": "abc", "k": 2.5}, "loss.options")
    assert problems == [
        "loss.options.epsilon: expected float, got 'abc'",
        "loss.options.k: expected int or None, got 2.5",
    ]
    assert registry.option_problems("plugin", {"epsilon": 1, "s": None}, "loss.options") == []
