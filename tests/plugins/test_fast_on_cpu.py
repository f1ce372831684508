"""The paper networks' CPU training paths besides the output conv (issue 23): the generator's
first conv, whose gradient to its input is computed without oneDNN, and instance norm as group
norm with a group per channel. Each must compute what the authors' module computes, forward
and backward; take its path only where it is faster (training on a CPU, NCHW; the first conv
only for an input that needs a gradient); and be the authors' module to checkpoints, the
reference loop and calls apart (`compute_as_authors`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cgfw_paper.discriminators import PatchOptions
from cgfw_paper.generators import ResnetOptions
from cgfw_paper.nets import InputConv, InstanceNorm, compute_as_authors, patchgan, resnet
from cgfw_paper.reference import load_reference


def close(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    # fp32 rounding of sums over up to a few thousand terms, relative to the largest value
    assert (a - b).abs().max() <= 1e-5 * b.abs().max(), name


def conv_pair(bias: bool = True) -> tuple[InputConv, nn.Conv2d]:
    torch.manual_seed(0)
    fast = InputConv(3, 16, 7, bias)
    plain = nn.Conv2d(3, 16, 7, bias=bias)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def run(net: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    net.zero_grad(set_to_none=True)
    y = net(x)
    y.backward(grad)
    grads = [p.grad for p in net.parameters()]
    assert x.grad is not None and all(g is not None for g in grads)
    return [y.detach(), x.grad, *grads]  # type: ignore[list-item]


@pytest.mark.parametrize("bias", [True, False])
def test_the_input_conv_computes_what_conv2d_computes(bias: bool) -> None:
    fast, plain = conv_pair(bias)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 30, 27, generator=g)
    grad = torch.randn(5, 16, 24, 21, generator=g)
    names = ["output", "input grad", "weight grad", "bias grad"][: 4 if bias else 3]
    for name, a, b in zip(names, run(fast, x, grad), run(plain, x, grad), strict=True):
        close(a, b, name)


def backward_of(net: nn.Module, x: torch.Tensor) -> str:
    y = net(x)
    return type(y.grad_fn).__name__


def test_the_input_conv_takes_its_path_only_for_an_input_that_needs_a_gradient() -> None:
    fast, plain = conv_pair()
    x = torch.randn(2, 3, 12, 12)
    fast.train()
    assert backward_of(fast, x.requires_grad_()) == "_InputGradOffDnnBackward"
    # a real image (no gradient to it): oneDNN's conv, which is faster for the rest
    assert backward_of(fast, x.detach()) == "ConvolutionBackward0"
    with torch.no_grad():
        assert torch.equal(fast(x), plain(x))
    # channels_last, bf16 autocast: nn.Conv2d's own forward
    assert backward_of(fast, x.contiguous(memory_format=torch.channels_last)) != (
        "_InputGradOffDnnBackward"
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert backward_of(fast, x) == "ConvolutionBackward0"
    # a 256 px image, padded: there oneDNN is the faster again
    assert backward_of(fast, torch.randn(1, 3, 262, 262, requires_grad=True)) == (
        "ConvolutionBackward0"
    )
    fast.fast_on_cpu = False  # the CycleGAN's calls apart: the authors' arithmetic
    assert backward_of(fast, x) == "ConvolutionBackward0"
    fast.fast_on_cpu = True
    fast.eval()  # evaluation, translation, export
    assert backward_of(fast, x) == "ConvolutionBackward0"
    assert torch.equal(fast(x), plain(x))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_instance_norm_computes_what_the_authors_instance_norm_computes(
    layout: torch.memory_format,
) -> None:
    fast, plain = InstanceNorm(16), nn.InstanceNorm2d(16, affine=False, track_running_stats=False)
    g = torch.Generator().manual_seed(2)
    # a mean and scale per image and channel, so that the wrong statistics would show (means
    # up to a few standard deviations, as a conv's outputs have: far larger ones lose digits
    # to fp32 in either kernel)
    shift = torch.randn(3, 16, 1, 1, generator=g) * 3
    scale = (torch.randn(3, 16, 1, 1, generator=g) * 0.5).exp() * 2
    x = (torch.randn(3, 16, 11, 13, generator=g) * scale + shift).contiguous(memory_format=layout)
    grad = torch.randn(3, 16, 11, 13, generator=g)
    ours, theirs = [], []
    for net, out in ((fast, ours), (plain, theirs)):
        xi = x.detach().clone().requires_grad_()
        y = net(xi)
        y.backward(grad)
        assert xi.grad is not None
        out += [y.detach(), xi.grad]
    for name, a, b in zip(("output", "input grad"), ours, theirs, strict=True):
        close(a, b, name)


def test_instance_norm_is_group_norm_only_when_training_on_nchw() -> None:
    fast = InstanceNorm(8)
    plain = nn.InstanceNorm2d(8)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    assert backward_of(fast, x) == "NativeGroupNormBackward0"
    # channels_last: group norm's kernel there is slower than instance norm's
    assert backward_of(fast, x.contiguous(memory_format=torch.channels_last)) != (
        "NativeGroupNormBackward0"
    )
    fast.fast_on_cpu = False
    assert torch.equal(fast(x), plain(x))
    fast.fast_on_cpu = True
    fast.eval()
    assert torch.equal(fast(x), plain(x))


def test_the_networks_are_the_authors_to_checkpoints_and_the_reference() -> None:
    generator = resnet(ResnetOptions(ngf=8, n_blocks=2))
    judge = patchgan(PatchOptions(ndf=8, n_layers=2))
    for net in (generator, judge):
        keys = {k: v.shape for k, v in net.state_dict().items()}
        fast = [m for m in net.modules() if hasattr(m, "fast_on_cpu")]
        assert any(isinstance(m, InstanceNorm) for m in fast)
        assert net is judge or isinstance(net[1], InputConv)
        compute_as_authors(net)
        assert not any(m.fast_on_cpu for m in fast)
        # the reference loop runs the authors' classes themselves, with the same keys
        load_reference().as_authors(net)
        assert {type(m) for m in fast} <= {nn.Conv2d, nn.InstanceNorm2d}
        assert {k: v.shape for k, v in net.state_dict().items()} == keys
