"""cgfw-unet: pix2pix's U-Net generators and pix2pix itself for cgfw, a third-party plugin.

Installed, it adds the generators ``unet_32``, ``unet_128`` and ``unet_256`` (the authors'
``--netG unet_128`` / ``unet_256``), the ablation ``unet_skips`` (``cgfw ablate --disable
unet_skips``), the model ``pix2pix`` (pix2pix_model.py's defaults) and the recipes ``pix2pix``
(facades, 256 px) and ``pix2pix_emoji``. cgfw finds this module through the entry point
``unet`` in the ``cgfw`` group (see pyproject.toml) and calls the ``register_*`` hooks below.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import cgfw
from cgfw import Register
from cgfw_unet.networks import UnetGenerator, UnetSizeError, UnetSkipConnectionBlock
from cgfw_unet.pix2pix import Pix2Pix, Pix2PixOptions

__version__ = "0.1.0"
__all__ = [
    "Pix2Pix",
    "Pix2PixOptions",
    "UnetGenerator",
    "UnetOptions",
    "UnetSizeError",
    "UnetSkipConnectionBlock",
    "unet_32",
    "unet_128",
    "unet_256",
]


class UnetOptions(BaseModel):
    """Options of ``[generator]`` for unet_128 / unet_256; cgfw validates the recipe section
    against this model before anything is built."""

    model_config = ConfigDict(extra="forbid")  # a misspelled option is an error, not ignored
    ngf: int = Field(64, ge=1, description="filters in the outermost conv (8 * ngf innermost)")
    norm: Literal["instance", "batch"] = Field(
        "instance", description="instance: the authors' CycleGAN default; batch: pix2pix's"
    )
    dropout: bool = Field(
        False, description="dropout 0.5 in the inner 8 * ngf levels (pix2pix: on; CycleGAN: off)"
    )
    skips: bool = Field(True, description="skip connections; false makes pix2pix's encoder-decoder")
    # None: cgfw fills them from data.channels when the recipe is validated (3 outside one).
    in_channels: int | None = Field(None, ge=1, description="input channels; none: data.channels")
    out_channels: int | None = Field(None, ge=1, description="output channels; none: data.channels")


def _unet(num_downs: int, name: str, opts: UnetOptions) -> UnetGenerator:
    return UnetGenerator(
        num_downs,
        opts.ngf,
        opts.norm,
        opts.dropout,
        opts.skips,
        input_nc=opts.in_channels or 3,
        output_nc=opts.out_channels or 3,
        name=name,
    )


def unet_32(opts: UnetOptions) -> UnetGenerator:
    """5 downsamplings (the fewest the authors' U-Net has): 32 px, as the embedded emoji. Its
    levels are ngf .. 8 ngf and the innermost, so no level carries dropout."""
    return _unet(5, "unet_32", opts)


def unet_128(opts: UnetOptions) -> UnetGenerator:
    """7 downsamplings: a 1x1 bottleneck at 128 px; sizes must be multiples of 128."""
    return _unet(7, "unet_128", opts)


def unet_256(opts: UnetOptions) -> UnetGenerator:
    """8 downsamplings: a 1x1 bottleneck at 256 px; sizes must be multiples of 256."""
    return _unet(8, "unet_256", opts)


def no_skips(_options: Any) -> dict[str, Any]:
    """The ablation's recipe edit: keep the generator, sever its skip connections."""
    return {"generator.skips": False}


@cgfw.hookimpl
def register_models(register: Register) -> None:
    register(
        "pix2pix",
        Pix2Pix,
        Pix2PixOptions,
        "pix2pix (Isola et al. 2017): U-Net + conditional PatchGAN, vanilla GAN + 100 x L1, paired",
    )


@cgfw.hookimpl
def register_recipes(register: Register) -> None:
    for name in ("pix2pix", "pix2pix_emoji"):
        path = files("cgfw_unet") / "recipes" / f"{name}.toml"
        first = path.read_text(encoding="utf-8").splitlines()[0]
        register(name, lambda _opts, p=path: p, None, first.lstrip("# "))


@cgfw.hookimpl
def register_generators(register: Register) -> None:
    register(
        "unet_32",
        unet_32,
        UnetOptions,
        "pix2pix's U-Net, 5 downsamplings: images of 32 px (multiples of 32)",
    )
    register(
        "unet_128",
        unet_128,
        UnetOptions,
        "pix2pix's U-Net, 7 downsamplings: images of 128 px (multiples of 128)",
    )
    register(
        "unet_256",
        unet_256,
        UnetOptions,
        "pix2pix's U-Net, 8 downsamplings: images of 256 px (multiples of 256)",
    )


@cgfw.hookimpl
def register_ablations(register: Register) -> None:
    register(
        "unet_skips",
        no_skips,
        None,
        "U-Net without its skip connections (generator.skips = false): pix2pix's "
        "encoder-decoder; for recipes whose generator is unet_128 or unet_256",
    )
