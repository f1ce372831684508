"""pix2pix's U-Net (Isola et al. 2017) as in the authors' code: ``UnetGenerator`` built from
nested ``UnetSkipConnectionBlock``s, with their attribute names, so their state dicts load as
they are.

Each level halves the image with a 4x4 stride-2 conv and doubles it back with a 4x4 stride-2
transposed conv; a level's input is concatenated to its output (the skip connection). With
``num_downs`` levels the bottleneck is (H / 2**num_downs) x (W / 2**num_downs): 1x1 for unet_128
at 128 px and unet_256 at 256 px.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from cgfw.errors import CgfwError

Norm = Literal["instance", "batch"]


class UnetSizeError(CgfwError, ValueError):
    """The image does not halve cleanly ``num_downs`` times. A ``CgfwError`` as well, so the
    cgfw CLI prints it as one line (a recipe mistake) instead of a traceback."""


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """The authors' choices: instance norm without affine parameters or running statistics,
    batch norm with them."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.BatchNorm2d(channels, affine=True)


class UnetSkipConnectionBlock(nn.Module):
    """One level: ``x -> [down -> submodule -> up] -> cat(x, that)``.

    The outermost level returns the upsampled image itself (tanh, no concatenation); the
    innermost has no submodule and no norm after its down conv (a 1x1 map at the nominal
    size). ``skips=False`` returns ``[down -> submodule -> up]`` alone: pix2pix's
    encoder-decoder, whose up convs then take half the channels.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: Norm = "instance",
        dropout: bool = False,
        skips: bool = True,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        self.skips = skips
        # Instance norm has no shift of its own, so the convs keep their bias; batch norm's
        # affine shift makes it redundant.
        bias = norm == "instance"
        if input_nc is None:
            input_nc = outer_nc
        # What the up conv receives: the submodule's output, doubled by its skip connection.
        up_nc = inner_nc * 2 if submodule is not None and skips else inner_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        layers: list[nn.Module]
        if outermost:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(up_nc, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(
                up_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias
            )
            layers = [downrelu, downconv, uprelu, upconv, norm_layer(norm, outer_nc)]
        else:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(
                up_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias
            )
            layers = [
                downrelu,
                downconv,
                norm_layer(norm, inner_nc),
                submodule,
                uprelu,
                upconv,
                norm_layer(norm, outer_nc),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost or not self.skips:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """``num_downs`` levels: ngf, 2ngf, 4ngf, then 8ngf for the rest (dropout, when asked, in
    the 8ngf levels between the innermost one and the 4ngf one, as in the authors' code).

    Height and width must be multiples of ``2**num_downs``; anything else fails in ``forward``
    with a message saying so.
    """

    def __init__(
        self,
        num_downs: int,
        ngf: int = 64,
        norm: Norm = "instance",
        dropout: bool = False,
        skips: bool = True,
        input_nc: int = 3,
        output_nc: int = 3,
        name: str = "unet",
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"a U-Net needs at least 5 downsamplings, got {num_downs}")
        self.num_downs = num_downs
        self.name = name

        def level(outer_nc: int, inner_nc: int, **where: Any) -> UnetSkipConnectionBlock:
            return UnetSkipConnectionBlock(outer_nc, inner_nc, norm=norm, skips=skips, **where)

        block = level(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = level(ngf * 8, ngf * 8, submodule=block, dropout=dropout)
        block = level(ngf * 4, ngf * 8, submodule=block)
        block = level(ngf * 2, ngf * 4, submodule=block)
        block = level(ngf, ngf * 2, submodule=block)
        self.model = level(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)

    def forward(self, x: Tensor) -> Tensor:
        multiple = 2**self.num_downs
        height, width = x.shape[-2:]
        if height % multiple or width % multiple:
            raise UnetSizeError(
                f"generator '{self.name}' (cgfw-unet) needs a height and width divisible by "
                f"{multiple} ({self.num_downs} downsamplings), got {height}x{width}; set "
                f"data.crop_size to a multiple of {multiple}"
                + (" or use unet_128 for 128 px" if self.num_downs > 7 else "")
            )
        return self.model(x)
