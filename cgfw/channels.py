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
    from cgfw.recipe import Resolved

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


def fill_network_channels(resolved: Resolved) -> None:
    """Fill every network slot's `in_channels` / `out_channels` left at None with what the model
    needs for the data's channel count; stop on one set otherwise. A component without such an
    option builds 3-channel networks: fine for 3-channel data (every run before this existed),
    an error naming the component for any other count."""
    channels = data_channels(resolved.options.get("data"))
    ask = getattr(resolved.model_class, "network_channels", None)
    for path, slot in resolved.slots.items():
        if path not in resolved.options:
            continue
        wanted: dict[str, int] = (
            ask(path, slot.kind, channels) if ask else needed_channels(slot.kind, channels)
        )
        options = resolved.options[path]
        fields = type(options).model_fields
        update: dict[str, Any] = {}
        for key, count in wanted.items():
            if key not in fields:
                if channels != DEFAULT_CHANNELS:
                    component = resolved.components[path]
                    raise CgfwError(
                        f"{resolved.source}: data.channels = {channels}, but {path} "
                        f"'{component.name}' (plugin '{component.plugin}') has no {key} option: "
                        f"it builds 3-channel networks only. Pick a {slot.kind} that takes "
                        f"{key} (`cgfw components {slot.kind}`), or use 3-channel data"
                    )
                continue
            given = getattr(options, key)
            if given is None:
                update[key] = count
            elif given != count:
                raise CgfwError(
                    f"{resolved.source}: {path}.{key} = {given} does not fit data.channels = "
                    f"{channels} (model '{resolved.model.name}' needs {count} there); set "
                    f"{path}.{key} = {count} or leave it out, or change data.channels"
                )
        if update:
            resolved.options[path] = options.model_copy(update=update)
