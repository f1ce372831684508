"""The paper's 70x70 PatchGAN discriminator and the 1x1 PixelGAN, as in the authors' code."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from cgfw import Register, hookimpl
from cgfw_paper.generators import conv_bias, norm_layer


class PatchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_layers: int = Field(
        3, ge=1, description="3 gives 70x70 receptive fields (30x30 scores at 256 px)"
    )
    ndf: int = Field(64, ge=1, description="filters in the first conv layer")
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
    ndf: int = Field(64, ge=1)
    norm: Literal["instance", "batch", "none"] = "instance"
    in_channels: int | None = Field(None, ge=1, description="channels judged; none: data.channels")


def patchgan(opts: PatchOptions) -> nn.Module:
    """C64 (no norm) - C128 - C256 ... with stride 2, then a stride-1 layer and a 1-channel conv."""
    # The first and last convs have a bias whatever the norm, as the authors'. Spectral norm
    # (no norm layer after the conv; not in the authors' main code) keeps every bias.
    spectral = opts.norm == "spectral"
    ndf, bias = opts.ndf, spectral or conv_bias(opts.norm)

    def conv(c_in: int, c_out: int, stride: int, use_bias: bool = True) -> nn.Module:
        layer = nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=use_bias)
        return nn.utils.parametrizations.spectral_norm(layer) if spectral else layer

    layers: list[nn.Module] = [conv(opts.in_channels or 3, ndf, 2), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, opts.n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        stride = 2 if n < opts.n_layers else 1
        layers += [
            conv(ndf * prev, ndf * mult, stride, bias),
            norm_layer("none" if spectral else opts.norm, ndf * mult),
            nn.LeakyReLU(0.2, True),
        ]
    layers.append(conv(ndf * mult, 1, 1))
    return nn.Sequential(*layers)


def pixel(opts: PixelOptions) -> nn.Module:
    """1x1 convolutions only: judges colour statistics per pixel, not structure. As the
    authors', only the first conv keeps its bias whatever the norm (the last follows the rule
    too)."""
    ndf, bias = opts.ndf, conv_bias(opts.norm)
    return nn.Sequential(
        nn.Conv2d(opts.in_channels or 3, ndf, 1),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
        norm_layer(opts.norm, ndf * 2),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 2, 1, 1, bias=bias),
    )


@hookimpl
def register_discriminators(register: Register) -> None:
    register("patchgan", patchgan, PatchOptions, "70x70 PatchGAN of the paper (n_layers=3)")
    register("pixel", pixel, PixelOptions, "1x1 PixelGAN: per-pixel real/fake scores")
