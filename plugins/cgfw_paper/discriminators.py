"""The paper's 70x70 PatchGAN discriminator and the 1x1 PixelGAN, as in the authors' code: their
options and names (the networks are in cgfw_paper/nets.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, hookimpl, lazy

# Each of n_layers halves the image: 10 take 1024 px to one pixel, after which the last convs
# have nothing to slide over. Filters: as the generators' typo guard.
MAX_LAYERS = 10
MAX_FILTERS = 1024


class PatchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_layers: int = Field(
        3,
        ge=1,
        le=MAX_LAYERS,
        description="3 gives 70x70 receptive fields (30x30 scores at 256 px)",
    )
    ndf: int = Field(64, ge=1, le=MAX_FILTERS, description="filters in the first conv layer")
    norm: Literal["instance", "batch", "none", "spectral"] = Field(
        "instance",
        description="spectral: spectral norm on every conv (Miyato et al. 2018) instead of a "
        "normalisation layer, as the authors suggest (their issue 340, PR 750)",
    )
    # None in a recipe: filled from data.channels when the recipe is validated.
    in_channels: int | None = Field(
        None,
        ge=1,
        description="channels judged; none: data.channels (pix2pix's conditional D: twice "
        "that, input and output)",
    )


class PixelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ndf: int = Field(64, ge=1, le=MAX_FILTERS)
    norm: Literal["instance", "batch", "none"] = "instance"
    in_channels: int | None = Field(None, ge=1, description="channels judged; none: data.channels")


@hookimpl
def register_discriminators(register: Register) -> None:
    register(
        "patchgan",
        lazy("cgfw_paper.nets:patchgan"),
        PatchOptions,
        "70x70 PatchGAN of the paper (n_layers=3)",
    )
    register(
        "pixel",
        lazy("cgfw_paper.nets:pixel"),
        PixelOptions,
        "1x1 PixelGAN: per-pixel real/fake scores",
    )
