"""The data's channel count (`data.channels`: 1 for grayscale, 3 for RGB, N for multi-channel
arrays) carried to the networks a recipe builds.

Every dataset's options may carry `channels` (3 when they do not). A network component takes the
count through options of its own, `in_channels` and `out_channels`, left at None in a recipe:
when the recipe is validated they are filled with what the model needs for data of that many
channels (a generator: in = out = channels; a discriminator: in = channels, pix2pix's
conditional one twice that). The resolved recipe (recipe.toml, checkpoints) then names the
concrete counts, so a run is rebuilt the same way by translate, export and resume. A count set
in the recipe that disagrees with the data is one error naming both keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from cgfw.errors import CgfwError

if TYPE_CHECKING:
    from cgfw.plugin.registry import Component

DEFAULT_CHANNELS = 3  # 8-bit RGB, what every image became before data.channels existed
CHANNEL_OPTIONS = ("in_channels", "out_channels")


def data_channels(options: BaseModel | None) -> int:
    """The channel count a dataset's options declare (`channels`), 3 when they have none."""
    channels = getattr(options, "channels", DEFAULT_CHANNELS)
    if not isinstance(channels, int) or channels < 1:
        raise CgfwError(f"data.channels must be a whole number >= 1, got {channels!r}")
    return channels


def needed_channels(kind: str, channels: int) -> dict[str, int]:
    """The in/out channel counts a network of this registry kind takes for `channels`-channel
    data, in a model that translates images to images of the same kind (the CycleGAN, CUT)."""
    if kind == "generator":
        return {"in_channels": channels, "out_channels": channels}
    if kind == "discriminator":
        return {"in_channels": channels}
    return {}


def with_channels(
    options: dict[str, Any],
    path: str,
    slot_kind: str,
    component: Component,
    channels: int,
    model: Component,
    source: str,
) -> dict[str, Any]:
    """A network slot's options as written, with `in_channels` / `out_channels` left out (or
    None) filled with what the model needs for `channels`-channel data, before the component's
    options model reads them; one set otherwise is an error. A component without such an
    option builds 3-channel networks: fine for 3-channel data (every run before this existed),
    an error naming the component for any other count."""
    ask = model.info("network_channels", None)
    wanted: dict[str, int] = (
        ask(path, slot_kind, channels) if ask else needed_channels(slot_kind, channels)
    )
    fields = component.options.model_fields
    filled = dict(options)
    for key, count in wanted.items():
        if key not in fields:
            if channels != DEFAULT_CHANNELS:
                raise CgfwError(
                    f"{source}: data.channels = {channels}, but {path} "
                    f"'{component.name}' (plugin '{component.plugin}') has no {key} option: "
                    f"it builds 3-channel networks only. Pick a {slot_kind} that takes "
                    f"{key} (`cgfw components {slot_kind}`), or use 3-channel data"
                )
            continue
        given = filled.get(key)
        if given is None:
            filled[key] = count
        elif given != count:
            raise CgfwError(
                f"{source}: {path}.{key} = {given} does not fit data.channels = "
                f"{channels} (model '{model.name}' needs {count} there); set "
                f"{path}.{key} = {count} or leave it out, or change data.channels"
            )
    return filled
