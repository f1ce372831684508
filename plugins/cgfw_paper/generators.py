"""The paper's generator (Johnson et al.'s ResNet, as in the authors' code) and the seed
article's variant that upsamples with nearest-neighbour + conv instead of transposed conv: their
options and names. The networks are in cgfw_paper/nets.py, imported when one is built."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, hookimpl, lazy

# Typo guards, generous: the paper's networks have 64 filters and 9 blocks; 1024 filters in the
# first layer make 4096 at the bottleneck, billions of weights. (Channels must equal
# data.channels, which has its bound.)
MAX_FILTERS = 1024
MAX_BLOCKS = 64


class ResnetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_blocks: int = Field(
        9,
        ge=0,
        le=MAX_BLOCKS,
        description="residual blocks at the bottleneck (paper: 9 at 256 px, 6 at 128)",
    )
    ngf: int = Field(64, ge=1, le=MAX_FILTERS, description="filters in the first conv layer")
    norm: Literal["instance", "batch", "none"] = "instance"
    dropout: bool = Field(False, description="dropout 0.5 inside each residual block")
    # None in a recipe: filled from data.channels when the recipe is validated;
    # 3 when the factory is called on options of its own, outside a recipe.
    in_channels: int | None = Field(
        None, ge=1, description="channels of the input images; none: data.channels"
    )
    out_channels: int | None = Field(
        None, ge=1, description="channels of the output images; none: data.channels"
    )


@hookimpl
def register_generators(register: Register) -> None:
    register(
        "resnet",
        lazy("cgfw_paper.nets:resnet"),
        ResnetOptions,
        "ResNet generator of the paper (Johnson et al.)",
    )
    register(
        "resnet_upsample",
        lazy("cgfw_paper.nets:resnet_upsample"),
        ResnetOptions,
        "ResNet generator upsampling by nearest x2 + 3x3 conv instead of transposed conv",
    )
