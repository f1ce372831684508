"""The paper's generator (Johnson et al.'s ResNet, as in the authors' code) and the seed
article's variant that upsamples with nearest-neighbour + conv instead of transposed conv."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from cgfw import Register, hookimpl


class ResnetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_blocks: int = Field(
        9, ge=0, description="residual blocks at the bottleneck (paper: 9 at 256 px, 6 at 128)"
    )
    ngf: int = Field(64, ge=1, description="filters in the first conv layer")
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


def conv_bias(norm: str) -> bool:
    """The authors' rule (`use_bias = norm_layer == nn.InstanceNorm2d`): a conv followed by a
    norm layer has a bias only with instance norm. Batch norm's affine shift makes it redundant;
    with no norm at all (their get_norm_layer('none')) their convs have none either, so
    networks and parameter counts match theirs and their weights load key for key."""
    return norm == "instance"


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Instance norm has no affine parameters, as in the authors' code."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    return nn.Identity()


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convs; no ReLU after the addition (Johnson et al.)."""

    def __init__(self, dim: int, norm: str, dropout: bool, bias: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=bias),
            norm_layer(norm, dim),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(
            *layers
        )  # the authors' name, so their weights load as they are

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


def _upsample(c_in: int, c_out: int, transposed: bool, bias: bool) -> nn.Module:
    if transposed:
        return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias)
    return nn.Sequential(
        nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)
    )


def resnet(opts: ResnetOptions, transposed: bool = True) -> nn.Module:
    """c7s1-ngf, d2ngf, d4ngf, R4ngf x n_blocks, u2ngf, ungf, c7s1-out_channels, tanh."""
    ngf, norm = opts.ngf, opts.norm
    bias = conv_bias(norm)  # the output conv keeps its bias whatever the norm, as theirs
    c_in, c_out = opts.in_channels or 3, opts.out_channels or 3
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(c_in, ngf, 7, bias=bias),
        norm_layer(norm, ngf),
        nn.ReLU(True),
    ]
    for mult in (1, 2):
        layers += [
            nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
            norm_layer(norm, ngf * mult * 2),
            nn.ReLU(True),
        ]
    layers += [ResnetBlock(ngf * 4, norm, opts.dropout, bias) for _ in range(opts.n_blocks)]
    for mult in (4, 2):
        layers += [
            _upsample(ngf * mult, ngf * mult // 2, transposed, bias),
            norm_layer(norm, ngf * mult // 2),
            nn.ReLU(True),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, c_out, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def resnet_upsample(opts: ResnetOptions) -> nn.Module:
    return resnet(opts, transposed=False)


@hookimpl
def register_generators(register: Register) -> None:
    register("resnet", resnet, ResnetOptions, "ResNet generator of the paper (Johnson et al.)")
    register(
        "resnet_upsample",
        resnet_upsample,
        ResnetOptions,
        "ResNet generator upsampling by nearest x2 + 3x3 conv instead of transposed conv",
    )
