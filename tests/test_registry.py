import pytest
from pydantic import BaseModel, ConfigDict

from cgfw.errors import CgfwError
from cgfw.plugin.registry import Component, Registry


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
