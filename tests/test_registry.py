from collections import OrderedDict

import pytest
from pydantic import BaseModel, ConfigDict

from cgfw.errors import CgfwError
from cgfw.plugin.registry import Component, Lazy, Registry, lazy


class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 4


def add(reg: Registry, name: str, plugin: str = "p") -> None:
    reg.register_function("generator", plugin)(name, lambda o: o.width, Opts, "a net")


def test_unknown_name_suggests_the_closest_and_lists_known() -> None:
    reg = Registry()
    for name in ("resnet", "resnet_upsample", "unet"):
        add(reg, name)
    with pytest.raises(CgfwError) as err:
        reg.get("generator", "resnet9")
    assert str(err.value) == (
        "unknown generator 'resnet9'; did you mean 'resnet'? (known: resnet, resnet_upsample, unet)"
    )


def test_duplicate_names_an_error_naming_both_plugins() -> None:
    reg = Registry()
    add(reg, "resnet", "alpha")
    add(reg, "resnet", "beta")
    add(reg, "other", "beta")
    with pytest.raises(CgfwError, match="registered by more than one plugin: alpha, beta"):
        reg.get("generator", "resnet")
    assert reg.get("generator", "other").plugin == "beta"  # the rest stays usable


def test_build_validates_options_and_names_unknown_keys() -> None:
    reg = Registry()
    add(reg, "net")
    comp: Component = reg.get("generator", "net")
    assert comp.build({"width": 7}) == 7
    with pytest.raises(CgfwError, match=r"generator\.widht: unknown option.*did you mean 'width'"):
        comp.build({"widht": 7})


def test_register_rejects_malformed_components() -> None:
    register = Registry().register_function("generator", "p")
    with pytest.raises(TypeError, match="not callable"):
        register("x", 3)
    with pytest.raises(TypeError, match="pydantic model"):
        register("x", lambda o: o, dict)


def test_names_filters_like_timm() -> None:
    reg = Registry()
    for name in ("resnet", "resnet_upsample", "unet"):
        add(reg, name)
    assert reg.names("generator", "resnet*") == ["resnet", "resnet_upsample"]


def test_metadata_given_to_register_is_what_the_engine_reads() -> None:
    reg = Registry()
    register = reg.register_function("tracker", "p")
    register("plain", lambda o, run: None)
    register("marked", lambda o, run: None, None, "on by default", default=True)
    register("extra", lambda o, run: None, requires=("no_such_package_xyz", "extra"))
    assert reg.defaults("tracker") == ["marked"]
    with pytest.raises(CgfwError, match=r'pip install "cgfw\[extra\]"'):
        reg.get("tracker", "extra").check_installed("run.trackers[0]")


def test_a_misspelled_register_keyword_is_an_error() -> None:
    register = Registry().register_function("tracker", "p")
    with pytest.raises(TypeError, match=r"unknown register keyword.*defualt"):
        register("t", lambda o, run: None, defualt=True)


def test_factory_attributes_of_older_plugins_still_count_with_one_warning() -> None:
    def old_style(options: object, run: object) -> None:
        return None

    old_style.default = True  # type: ignore[attr-defined]
    reg = Registry()
    reg.register_function("tracker", "old-plugin")("old", old_style)
    with pytest.warns(DeprecationWarning, match="old-plugin.*register\\(\\.\\.\\., default="):
        assert reg.defaults("tracker") == ["old"]


def test_a_lazy_factory_is_imported_when_called_never_when_asked_about() -> None:
    registry = Registry()
    register = registry.register_function("generator", "outside")
    register("late", lazy("no_such_module_anywhere:build"), None, "", default=True)
    late = registry.get("generator", "late")
    # What the engine reads before building comes from register's keywords only.
    assert late.info("default") is True
    assert late.info("requires", (None, None)) == (None, None)
    assert registry.defaults("generator") == ["late"]
    with pytest.raises(ModuleNotFoundError):
        late.build({})
    register("real", lazy("collections:OrderedDict"), None)
    assert registry.get("generator", "real").target is OrderedDict


def test_lazy_factories_are_named_module_colon_attribute() -> None:
    with pytest.raises(TypeError, match=r"package\.module:attribute"):
        lazy("cgfw_paper.nets.resnet")


def _bundled_lazy() -> list[Component]:
    from cgfw.plugin.loader import load_plugins

    registry = load_plugins().registry
    return [
        c
        for table in registry.components.values()
        for c in table.values()
        if isinstance(c.factory, Lazy)
    ]


def test_every_bundled_lazy_factory_names_something_callable() -> None:
    found = _bundled_lazy()
    assert len(found) >= 20, [c.name for c in found]  # the paper's networks, losses, datasets...
    for component in found:
        assert callable(component.target), (component.kind, component.name)


def test_a_lazy_models_keywords_say_what_its_class_says() -> None:
    """A lazily registered model's slots, directions and default are given twice, to register
    (read by validation without importing torch) and on the class (its documented API): they
    must agree, and nothing the class changes from cgfw.Model's defaults may be left out."""
    from cgfw import Model

    models = [c for c in _bundled_lazy() if c.kind == "model"]
    assert models
    for component in models:
        cls = component.target
        for key in ("slots", "directions", "default", "optimizer_defaults"):
            assert component.info(key, getattr(Model, key)) == getattr(cls, key), key
        assert cls.network_channels.__func__ is Model.network_channels.__func__ or (
            "network_channels" in component.meta
        )
