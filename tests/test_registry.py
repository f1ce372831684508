import pytest
from pydantic import BaseModel, ConfigDict

from cgfw.errors import CgfwError
from cgfw.registry import Component, Registry


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
