"""The ResNet generator's output conv (issue 23): an nn.Conv2d that trains on a CPU as the
transposed convolution of its flipped kernel, its forward pass by im2col (NCHW) or oneDNN
(channels_last), its backward by oneDNN in channels_last. It must compute what nn.Conv2d
computes, forward and backward, in either memory layout; run nn.Conv2d's own forward
wherever no gradient is taken (evaluation, translation, export); and be an nn.Conv2d to
checkpoints, the authors' weights and the reference loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cgfw_paper.discriminators import PatchOptions
from cgfw_paper.generators import ResnetOptions
from cgfw_paper.nets import OutputConv, patchgan, resnet
from cgfw_paper.reference import load_reference


def pair(c_in: int = 16) -> tuple[OutputConv, nn.Conv2d]:
    torch.manual_seed(0)
    fast = OutputConv(c_in, 3, 7)
    plain = nn.Conv2d(c_in, 3, 7)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def forward_backward(
    net: nn.Module, x: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_()
    net.zero_grad(set_to_none=True)
    y = net(x)
    y.backward(grad)
    assert net.weight.grad is not None and net.bias is not None and net.bias.grad is not None
    return y.detach(), x.grad, net.weight.grad, net.bias.grad  # type: ignore[return-value]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_training_computes_what_conv2d_computes(layout: torch.memory_format) -> None:
    fast, plain = pair()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 16, 20, 23, generator=g).contiguous(memory_format=layout)
    grad = torch.randn(5, 3, 14, 17, generator=g)
    ours = forward_backward(fast, x, grad)
    theirs = forward_backward(plain, x, grad)
    names = ("output", "input grad", "weight grad", "bias grad")
    for name, a, b in zip(names, ours, theirs, strict=True):
        # fp32 rounding of sums over up to 1,190 terms, relative to the largest value
        assert (a - b).abs().max() <= 1e-5 * b.abs().max(), name
    # the output keeps the input's layout, so a channels_last run stays in it
    assert ours[0].is_contiguous(memory_format=layout)


def test_its_training_forms_are_taken_only_where_they_are_faster() -> None:
    """NCHW fp32 up to 256 px: the forward pass by im2col; channels_last, bf16 autocast and
    larger images: the transposed conv; no gradient: nn.Conv2d's own forward."""
    fast, plain = pair()
    x = torch.randn(2, 16, 12, 12)
    calls = []
    original = torch.nn.functional.conv_transpose2d

    def counted(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    def backward_of(t: torch.Tensor) -> str:
        return type(fast(t.requires_grad_()).grad_fn).__name__

    torch.nn.functional.conv_transpose2d = counted  # type: ignore[assignment]
    try:
        fast.train()
        assert backward_of(x) == "_OutputByIm2colBackward" and not calls
        fast(x.contiguous(memory_format=torch.channels_last))
        assert len(calls) == 1  # channels_last: the transposed conv
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast(x)
        assert len(calls) == 2  # bf16 autocast: the transposed conv, in bf16
        # a 384 px image, padded: there the transposed conv is the faster again
        assert backward_of(torch.randn(1, 16, 390, 390)) != "_OutputByIm2colBackward"
        assert len(calls) == 3
        with torch.no_grad():
            assert torch.equal(fast(x), plain(x))  # no gradient: nn.Conv2d's own forward
        fast.eval()
        assert torch.equal(fast(x), plain(x))  # evaluation, translation, export
        fast.train()
        fast.fast_on_cpu = False  # the CycleGAN's calls apart: the authors' arithmetic
        assert torch.equal(fast(x), plain(x))
        assert len(calls) == 3
    finally:
        torch.nn.functional.conv_transpose2d = original


def test_the_generator_ends_with_it_and_loads_as_a_plain_conv() -> None:
    net = resnet(ResnetOptions(ngf=8, n_blocks=2))
    last = net[-2]
    assert isinstance(last, OutputConv) and isinstance(last, nn.Conv2d)
    assert last.transposed is False  # nn.Conv2d's own attribute, as any plain conv's
    # the same keys and shapes as the authors' nn.Conv2d, so checkpoints and their weights load
    plain = nn.Conv2d(8, 3, 7)
    assert {k: v.shape for k, v in last.state_dict().items()} == {
        k: v.shape for k, v in plain.state_dict().items()
    }
    # the reference loop times the authors' modules: a plain nn.Conv2d there
    load_reference().as_authors(net)
    assert type(net[-2]) is nn.Conv2d
    assert all(m.inplace for m in net.modules() if isinstance(m, nn.ReLU))


def test_the_reference_leaves_other_conv_subclasses_alone() -> None:
    """Spectral norm makes each conv a ParametrizedConv2d (an nn.Conv2d subclass whose weight
    is a property of that class): made an nn.Conv2d it would have no weight at all."""
    net = patchgan(PatchOptions(ndf=8, n_layers=2, norm="spectral"))
    load_reference().as_authors(net)
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 1, 6, 6)
