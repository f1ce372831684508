"""The paper's networks, as in the authors' code: Johnson et al.'s ResNet generator (and the
seed article's variant that upsamples with nearest-neighbour + conv), the 70x70 PatchGAN and
the 1x1 PixelGAN. Imported only when a network is built: generators.py and discriminators.py
register them lazily, so that commands which only read recipes do not import torch."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cgfw_paper.discriminators import PatchOptions, PixelOptions
from cgfw_paper.generators import ResnetOptions

# The activations are not in place, unlike the authors' (nn.ReLU(True)): the same values, but
# an in-place ReLU on instance norm's output (a view of batch norm's) makes autograd copy each
# slice back in the backward pass, 5 % of a quickstart step on a CPU (docs/benchmarks.md).


def conv_bias(norm: str) -> bool:
    """The authors' rule (`use_bias = norm_layer == nn.InstanceNorm2d`): a conv followed by a
    norm layer has a bias only with instance norm. Batch norm's affine shift makes it redundant;
    with no norm at all (their get_norm_layer('none')) their convs have none either, so
    networks and parameter counts match theirs and their weights load key for key."""
    return norm == "instance"


class FastOnCpu:
    """A module of the authors' networks that trains faster on a CPU in a form of its own (the
    same values to fp32 rounding) and names the authors' class it stands for: the one
    benchmarks/reference_loop.py's `as_authors` makes it. `fast_on_cpu = False` (set by
    `compute_as_authors`) keeps the authors' form."""

    authors_class: type[nn.Module]
    fast_on_cpu = True  # not `transposed`, which nn.Conv2d has already (what kind of conv it is)
    training: bool  # nn.Module's

    def _trains_on_cpu(self, x: Tensor) -> bool:
        """Whether this call may take the CPU form: training, on a CPU, not switched off."""
        return self.fast_on_cpu and self.training and x.is_cpu


class InstanceNorm(FastOnCpu, nn.InstanceNorm2d):
    """The authors' instance norm (no affine parameters, no running statistics), which trains
    faster on a CPU. nn.InstanceNorm2d normalises through batch norm's kernel on an (1, N*C,
    H, W) view; group norm with a group per channel is the same normalisation (each image's
    and channel's mean and biased variance over H x W, eps inside the root) and its CPU
    kernel runs forward + backward 1.4-3.7x faster on contiguous (NCHW) tensors at 32-192 px,
    about as fast at 256 px (docs/benchmarks.md). The same values to fp32 rounding
    (tests/plugins/test_fast_on_cpu.py). In channels_last, where group norm is slower, in
    evaluation, translation and export, on any GPU, under torch.compile and with `fast_on_cpu =
    False` (the CycleGAN's calls apart), it is nn.InstanceNorm2d."""

    authors_class = nn.InstanceNorm2d  # what the authors' networks.py has here

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=False, track_running_stats=False)

    def forward(self, x: Tensor) -> Tensor:
        # Eager only: under torch.compile, inductor writes its own kernel for either.
        fast = self._trains_on_cpu(x) and x.dim() == 4 and x.is_contiguous()
        if fast and not torch.compiler.is_compiling():
            return F.group_norm(x, self.num_features, eps=self.eps)
        return super().forward(x)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Instance norm has no affine parameters, as in the authors' code."""
    if kind == "instance":
        return InstanceNorm(channels)
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
            nn.ReLU(),
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


# Where torch's im2col path (a matrix product, then col2im) beats oneDNN for a conv's side
# with 3 channels, per plane (a reflection-padded image; docs/benchmarks.md): the input conv's
# gradient to its input up to 128 px (1.6-3.7x faster at 32 to 128 px, slower past 224 px),
# the output conv's forward pass up to 256 px (the layer's forward + backward 1.1-1.4x faster
# at 32 to 256 px, slower from 384 px).
_IM2COL_MAX_PLANE = 134 * 134
_OUTPUT_IM2COL_MAX_PLANE = 262 * 262


def _im2col_may_take(x: Tensor, max_plane: int) -> bool:
    """Whether torch's im2col path may compute a conv of `x`: eager fp32 on contiguous (NCHW)
    planes no larger than `max_plane` (under torch.compile inductor chooses its own kernels)."""
    return (
        x.dtype == torch.float32
        and x.is_contiguous()
        and x.shape[-2] * x.shape[-1] <= max_plane
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
    )


class _OutputByIm2col(torch.autograd.Function):
    """conv_transpose2d(x, kernel, bias, padding=k-1), OutputConv's form: its forward pass
    computed as the input gradient of the conv it transposes, by im2col (oneDNN computes 3
    output channels as 16), its backward as the transposed conv's by oneDNN in channels_last,
    as in OutputConv's other form."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, kernel: Tensor, bias: Tensor | None) -> Tensor:
        k = kernel.shape[-1]
        n, _, h, w = x.shape
        # The transposed conv's output is the input of the conv whose gradient it is; only
        # this tensor's shape is read.
        shape = x.new_empty(n, kernel.shape[1], h - k + 1, w - k + 1)
        pad = [k - 1, k - 1]
        y: Tensor = torch.ops.aten._slow_conv2d_backward(
            x, shape, kernel, [k, k], [1, 1], pad, [True, False, False]
        )[0]
        if bias is not None:
            y += bias.view(1, -1, 1, 1)
        ctx.save_for_backward(x, kernel)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, kernel = ctx.saved_tensors
        cl, k = torch.channels_last, kernel.shape[-1]
        grad_x, grad_kernel, grad_bias = torch.ops.aten.convolution_backward(
            grad.contiguous(memory_format=cl),
            x.contiguous(memory_format=cl),
            kernel.contiguous(memory_format=cl),
            [kernel.shape[1]] if ctx.has_bias else None,
            [1, 1],
            [k - 1, k - 1],
            [1, 1],
            True,
            [0, 0],
            1,
            list(ctx.needs_input_grad),
        )
        return grad_x, grad_kernel, grad_bias


class OutputConv(FastOnCpu, nn.Conv2d):
    """The generator's last conv (ngf -> 3 channels, 7x7): an nn.Conv2d (the same parameters,
    keys and initialisation), which trains faster on a CPU. oneDNN blocks channels in 16s, so a
    conv to 3 channels computes 16 and keeps 3: on the quickstart's batches this one conv took a
    third of the generator's convolution time. Its transposed convolution with the kernel
    flipped is the same sum with 3 input channels and 16 output ones, whose backward oneDNN's
    channels_last kernels run 2x faster; its forward pass runs faster still by im2col, as the
    input gradient of the conv it transposes (NCHW fp32 up to 256 px; docs/benchmarks.md).
    The same values to fp32 rounding (tests/plugins/test_output_conv.py). Evaluation,
    translation and export, any GPU, and `fast_on_cpu = False` (the CycleGAN's calls apart,
    which compute what the authors' loop does bit for bit) run nn.Conv2d's own forward."""

    authors_class = nn.Conv2d  # what the authors' networks.py has here (reference_loop.as_authors)

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(c_in, c_out, kernel)  # stride 1, no padding (reflection pads before)

    def forward(self, x: Tensor) -> Tensor:
        if not (self._trains_on_cpu(x) and torch.is_grad_enabled()):
            return super().forward(x)
        kernel = self.weight.transpose(0, 1).flip(2, 3)
        if _im2col_may_take(x, _OUTPUT_IM2COL_MAX_PLANE):
            out: Tensor = _OutputByIm2col.apply(x, kernel.contiguous(), self.bias)
            return out
        cl = torch.channels_last
        y = F.conv_transpose2d(
            x.contiguous(memory_format=cl),
            kernel.contiguous(memory_format=cl),
            self.bias,
            padding=self.kernel_size[0] - 1,
        )
        # Back to the input's layout: channels_last only where the run trains in it.
        keep = x.is_contiguous(memory_format=cl) and not x.is_contiguous()
        return y if keep else y.contiguous()


class _InputGradOffDnn(torch.autograd.Function):
    """conv2d whose gradient to its input is computed without oneDNN (im2col's transpose:
    a matrix product, then col2im), the weights' and bias's with it, as torch would."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = list(stride), list(padding), bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            sizes = [weight.shape[0]] if ctx.has_bias else None
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad,
                x,
                weight,
                sizes,
                ctx.stride,
                ctx.padding,
                [1, 1],
                False,
                [0, 0],
                1,
                [False, ctx.needs_input_grad[1], ctx.needs_input_grad[2]],
            )
        if ctx.needs_input_grad[0]:
            kernel = list(weight.shape[2:])
            grad_x = torch.ops.aten._slow_conv2d_backward(
                grad.contiguous(), x, weight, kernel, ctx.stride, ctx.padding, [True, False, False]
            )[0]
        return grad_x, grad_w, grad_b, None, None


class InputConv(FastOnCpu, nn.Conv2d):
    """The generator's first conv (3 -> ngf channels, 7x7): an nn.Conv2d (the same parameters,
    keys and initialisation) whose gradient to its input trains faster on a CPU. That
    gradient, needed where a generator takes the other's fakes (the cycles), has 3 channels,
    which oneDNN computes as 16 (as for OutputConv); torch's own im2col path computes it 2.4x
    faster at the quickstart's sizes, while oneDNN stays faster for the forward pass and the
    weights' gradient, which it still computes (docs/benchmarks.md). The same values to fp32
    rounding (tests/plugins/test_fast_on_cpu.py). Only for contiguous fp32 inputs up to 128 px
    that need a gradient, training eagerly on a CPU, with `fast_on_cpu` (the CycleGAN's calls
    apart turn it off); otherwise nn.Conv2d's own forward."""

    authors_class = nn.Conv2d  # what the authors' networks.py has here

    def __init__(self, c_in: int, c_out: int, kernel: int, bias: bool) -> None:
        super().__init__(c_in, c_out, kernel, bias=bias)  # no padding (reflection pads before)

    def forward(self, x: Tensor) -> Tensor:
        fast = self._trains_on_cpu(x) and x.requires_grad and torch.is_grad_enabled()
        if not (fast and _im2col_may_take(x, _IM2COL_MAX_PLANE)):
            return super().forward(x)
        out: Tensor = _InputGradOffDnn.apply(x, self.weight, self.bias, self.stride, self.padding)
        return out


def compute_as_authors(net: nn.Module) -> None:
    """Every module in `net` that computes faster on a CPU (FastOnCpu: InputConv, InstanceNorm,
    OutputConv) computed as the authors' class computes it (in their order of summation): for
    a step meant to match their loop bit for bit."""
    for module in net.modules():
        if isinstance(module, FastOnCpu):
            module.fast_on_cpu = False


def resnet(opts: ResnetOptions, transposed: bool = True) -> nn.Module:
    """c7s1-ngf, d2ngf, d4ngf, R4ngf x n_blocks, u2ngf, ungf, c7s1-out_channels, tanh."""
    ngf, norm = opts.ngf, opts.norm
    bias = conv_bias(norm)  # the output conv keeps its bias whatever the norm, as theirs
    c_in, c_out = opts.in_channels or 3, opts.out_channels or 3
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        InputConv(c_in, ngf, 7, bias),
        norm_layer(norm, ngf),
        nn.ReLU(),
    ]
    for mult in (1, 2):
        layers += [
            nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
            norm_layer(norm, ngf * mult * 2),
            nn.ReLU(),
        ]
    layers += [ResnetBlock(ngf * 4, norm, opts.dropout, bias) for _ in range(opts.n_blocks)]
    for mult in (4, 2):
        layers += [
            _upsample(ngf * mult, ngf * mult // 2, transposed, bias),
            norm_layer(norm, ngf * mult // 2),
            nn.ReLU(),
        ]
    layers += [nn.ReflectionPad2d(3), OutputConv(ngf, c_out, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def resnet_upsample(opts: ResnetOptions) -> nn.Module:
    return resnet(opts, transposed=False)


def patchgan(opts: PatchOptions) -> nn.Module:
    """C64 (no norm) - C128 - C256 ... with stride 2, then a stride-1 layer and a 1-channel conv."""
    # The first and last convs have a bias whatever the norm, as the authors'. Spectral norm
    # (no norm layer after the conv; not in the authors' main code) keeps every bias.
    spectral = opts.norm == "spectral"
    ndf, bias = opts.ndf, spectral or conv_bias(opts.norm)

    def conv(c_in: int, c_out: int, stride: int, use_bias: bool = True) -> nn.Module:
        layer = nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=use_bias)
        return nn.utils.parametrizations.spectral_norm(layer) if spectral else layer

    layers: list[nn.Module] = [conv(opts.in_channels or 3, ndf, 2), nn.LeakyReLU(0.2)]
    mult = 1
    for n in range(1, opts.n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        stride = 2 if n < opts.n_layers else 1
        layers += [
            conv(ndf * prev, ndf * mult, stride, bias),
            norm_layer("none" if spectral else opts.norm, ndf * mult),
            nn.LeakyReLU(0.2),
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
        nn.LeakyReLU(0.2),
        nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
        norm_layer(opts.norm, ndf * 2),
        nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 2, 1, 1, bias=bias),
    )
