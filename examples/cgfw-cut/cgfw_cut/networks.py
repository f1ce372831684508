"""The networks of CUT's official code (taesungp/contrastive-unpaired-translation) at their
defaults: a ResNet generator and a PatchGAN whose stride-2 convolutions are replaced by a
stride-1 convolution and a fixed [1, 2, 1] blur before subsampling (anti-aliased, Zhang 2019),
and whose upsampling is a fixed [1, 3, 3, 1] transposed blur and a 3x3 convolution. The
filters are buffers, so the parameter counts equal the paper plugin's resnet and patchgan."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from cgfw_paper.nets import ResnetBlock, norm_layer


def _binomial(size: int) -> Tensor:
    """The 2-D binomial filter of `size` taps (a row of Pascal's triangle), summing to 1."""
    taps = torch.ones(1)
    for _ in range(size - 1):
        taps = torch.cat([taps, torch.zeros(1)]) + torch.cat([torch.zeros(1), taps])
    kernel = taps[:, None] * taps[None, :]
    return kernel / kernel.sum()


class BlurDown(nn.Module):
    """Reflection pad, [1, 2, 1] x [1, 2, 1] blur per channel, keep every second pixel."""

    filt: Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", _binomial(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1]
        )


class BlurUp(nn.Module):
    """Replication pad, transposed [1, 3, 3, 1] blur x 4 per channel: twice the size."""

    filt: Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", (_binomial(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        up = F.conv_transpose2d(padded, self.filt, stride=2, padding=2, groups=x.shape[1])
        return up[:, :, 1:-1, 1:-1]


class GeneratorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_blocks: int = Field(9, ge=0, description="residual blocks (CUT: 9, resnet_9blocks)")
    ngf: int = Field(64, ge=1, description="filters in the first conv layer")
    norm: Literal["instance", "batch", "none"] = "instance"
    antialias: bool = Field(True, description="blur before subsampling (CUT's default)")
    antialias_up: bool = Field(
        True, description="fixed-blur upsampling + conv; false: a learned transposed conv"
    )
    # None: cgfw fills them from data.channels when the recipe is validated (3 outside one).
    in_channels: int | None = Field(None, ge=1, description="input channels; none: data.channels")
    out_channels: int | None = Field(None, ge=1, description="output channels; none: data.channels")


def resnet_aa(opts: GeneratorOptions) -> nn.Sequential:
    """An nn.Sequential, so CUT can read encoder features by layer index (0, 4, 8, 12, 16)."""
    ngf, norm, bias = opts.ngf, opts.norm, opts.norm != "batch"
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(opts.in_channels or 3, ngf, 7, bias=bias),
        norm_layer(norm, ngf),
        nn.ReLU(True),
    ]
    for mult in (1, 2):
        c_in, c_out = ngf * mult, ngf * mult * 2
        if opts.antialias:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias),
                norm_layer(norm, c_out),
                nn.ReLU(True),
                BlurDown(c_out),
            ]
        else:
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, c_out),
                nn.ReLU(True),
            ]
    layers += [ResnetBlock(ngf * 4, norm, False, bias) for _ in range(opts.n_blocks)]
    for mult in (4, 2):
        c_in, c_out = ngf * mult, ngf * mult // 2
        if opts.antialias_up:
            layers += [BlurUp(c_in), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)]
        else:
            layers.append(
                nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias)
            )
        layers += [norm_layer(norm, c_out), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, opts.out_channels or 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


class DiscriminatorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_layers: int = Field(3, ge=1, description="CUT's basic D: 3")
    ndf: int = Field(64, ge=1)
    norm: Literal["instance", "batch", "none"] = "instance"
    antialias: bool = Field(True, description="blur before subsampling (CUT's default)")
    in_channels: int | None = Field(None, ge=1, description="channels judged; none: data.channels")


def patchgan_aa(opts: DiscriminatorOptions) -> nn.Sequential:
    ndf, bias = opts.ndf, opts.norm != "batch"

    def down(c_in: int, c_out: int, norm: bool, use_bias: bool) -> list[nn.Module]:
        stride = 1 if opts.antialias else 2
        block: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=use_bias)
        ]
        if norm:
            block.append(norm_layer(opts.norm, c_out))
        block.append(nn.LeakyReLU(0.2, True))
        return block + ([BlurDown(c_out)] if opts.antialias else [])

    layers = down(opts.in_channels or 3, ndf, norm=False, use_bias=True)
    mult = 1
    for n in range(1, opts.n_layers):
        prev, mult = mult, min(2**n, 8)
        layers += down(ndf * prev, ndf * mult, norm=True, use_bias=bias)
    prev, mult = mult, min(2**opts.n_layers, 8)
    layers += [
        nn.Conv2d(ndf * prev, ndf * mult, 4, padding=1, bias=bias),
        norm_layer(opts.norm, ndf * mult),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * mult, 1, 4, padding=1),
    ]
    return nn.Sequential(*layers)
