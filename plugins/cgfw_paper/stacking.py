"""Stacked calls: a network run once on same-sized inputs stacked along the batch computes
what a call per input would, with kernels twice the size (which at batch 1 keep more of a GPU
busy), unless it mixes samples. Which networks do is decided by their modules' types and, on
the first batch, by measurement (docs/plugins.md, "Stacked calls").

Paired calls: two networks of one structure (the CycleGAN's discriminators), built from modules
that treat channels apart, run as one network of twice the channels whose convs are grouped in
two; on a CPU one call instead of two saves the per-operator cost that dominates a small
network's time (docs/benchmarks.md)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.spectral_norm import SpectralNorm

from cgfw import Runtime
from cgfw_paper.nets import InstanceNorm

log = logging.getLogger("cgfw.train")


class Stacking:
    """Which networks may take stacked inputs: all, unless train.stack_calls is false, but
    those in `apart` (they mix samples, by type or as measured)."""

    def __init__(
        self,
        enabled: bool,
        nets: Iterable[nn.Module],
        pair: tuple[nn.Module, nn.Module] | None = None,
    ) -> None:
        self.enabled = enabled
        self.apart: list[nn.Module] = [n for n in nets if mixes_samples(n)]
        self.checked = False
        # The two networks that may run as one (`judged`), where their structure allows it.
        self.pair = pair if pair is not None and runs_as_one(*pair) else None

    def stacks(self, net: nn.Module) -> bool:
        return self.enabled and not any(net is other for other in self.apart)

    def pairs(self, first: nn.Module, second: nn.Module) -> bool:
        return (
            self.pair is not None
            and (first, second) == self.pair
            and self.stacks(first)
            and self.stacks(second)
            and not (_hooked(first) or _hooked(second))  # hooks would not see a paired call
        )

    def judged(
        self,
        rt: Runtime,
        first: nn.Module,
        second: nn.Module,
        firsts: Sequence[Tensor],
        seconds: Sequence[Tensor],
    ) -> tuple[Sequence[Tensor], Sequence[Tensor]]:
        """`first` on each of `firsts` and `second` on each of `seconds`: where the two pair
        and their stacked inputs have one shape, one call of both as one network (`as_one`);
        else `together` for each, first's calls before second's."""
        inputs = [*firsts, *seconds]
        same = all(x.shape[1:] == inputs[0].shape[1:] for x in inputs)
        if not (same and self.pairs(first, second)) or (
            sum(len(x) for x in firsts) != sum(len(x) for x in seconds)
        ):
            return self.together(rt, first, *firsts), self.together(rt, second, *seconds)
        ones, twos = as_one(first, second, torch.cat(list(firsts)), torch.cat(list(seconds)))
        return ones.split([len(x) for x in firsts]), twos.split([len(x) for x in seconds])

    def together(self, rt: Runtime, net: nn.Module, *inputs: Tensor) -> Sequence[Tensor]:
        """`net(x)` for each input; one call on the inputs stacked where `net` stacks and the
        images share a size."""
        if not self.stacks(net) or any(x.shape[1:] != inputs[0].shape[1:] for x in inputs):
            return [net(x) for x in inputs]
        # One memory format for all (the image pool returns contiguous fakes), or cat drops it.
        fmt = rt.speed.memory_format
        return net(torch.cat([x.contiguous(memory_format=fmt) for x in inputs])).split(
            [len(x) for x in inputs]
        )

    @torch.no_grad()
    def check(
        self, rt: Runtime, nets: dict[str, nn.Module], real_a: Tensor, real_b: Tensor
    ) -> list[str]:
        """Once, on a batch: run each network that may stack on the two batches stacked and
        apart, in fp32 (TF32 off). One whose outputs differ beyond rounding, or are not finite,
        mixes samples in a way its modules' types do not show (a functional batch norm,
        minibatch statistics, attention across the batch): its calls run apart from then on,
        and it is named. Every process takes the same decision. Returns the names moved apart.

        Leaves no trace: buffers are restored, random draws forked, dropout off for the
        comparison (it draws other masks, from the same distribution)."""
        self.checked = True
        if not self.enabled or real_a.shape[1:] != real_b.shape[1:]:
            return []
        moved = []
        for name, net in nets.items():
            if not self.stacks(net):
                continue
            if rt.group.any(_differs_when_stacked(rt, net, real_a, real_b)):
                self.apart.append(net)
                moved.append(name)
                log.warning(
                    "%s (%s) gives other outputs on inputs stacked along the batch than on each "
                    "input alone: it mixes samples, so its calls run apart (a module attribute "
                    "mixes_samples = True says so up front)",
                    name,
                    type(net).__name__,
                )
        return moved


# Modules that treat each channel alone, and so run as they are on two networks' channels.
_CHANNELWISE = (nn.LeakyReLU, nn.ReLU, nn.Identity)


def runs_as_one(first: nn.Module, second: nn.Module) -> bool:
    """Whether `as_one` computes what the two networks do: both an nn.Sequential of the same
    layers (plain convs, instance norms without statistics kept, channelwise activations) with
    the same shapes and settings (no parametrization such as spectral norm)."""
    if type(first) is not nn.Sequential or type(second) is not nn.Sequential:
        return False
    if len(first) != len(second):
        return False
    return all(_same_layer(a, b) for a, b in zip(first, second, strict=True))


def _same_layer(a: nn.Module, b: nn.Module) -> bool:
    if type(a) is not type(b) or parametrize.is_parametrized(a) or parametrize.is_parametrized(b):
        return False
    if isinstance(a, nn.Conv2d) and isinstance(b, nn.Conv2d):
        settings = ("stride", "padding", "dilation", "groups", "padding_mode")
        return (
            type(a) is nn.Conv2d
            and a.groups == 1
            and a.padding_mode == "zeros"
            and a.weight.shape == b.weight.shape
            and (a.bias is None) == (b.bias is None)
            and all(getattr(a, k) == getattr(b, k) for k in settings)
        )
    if isinstance(a, nn.InstanceNorm2d) and isinstance(b, nn.InstanceNorm2d):
        return (
            type(a) in (nn.InstanceNorm2d, InstanceNorm)
            and not (a.affine or a.track_running_stats or b.affine or b.track_running_stats)
            and a.eps == b.eps
        )
    if isinstance(a, nn.LeakyReLU) and isinstance(b, nn.LeakyReLU):
        return a.negative_slope == b.negative_slope
    return type(a) in _CHANNELWISE


def _hooked(net: nn.Module) -> bool:
    """Whether a forward hook is on the network or a module in it (spectral norm's, a user's,
    a test's), or on every module: then it runs as it is."""
    hooks = nn.modules.module
    if hooks._global_forward_hooks or hooks._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def as_one(first: nn.Module, second: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(first(x), second(y)) for two networks that `runs_as_one`, as one network on their
    inputs side by side along the channels: each conv grouped in two (the first's weights,
    then the second's), each instance norm a group norm with a group per channel (the same
    normalisation, channel by channel)."""
    h = torch.cat([x, y], 1)
    for a, b in zip(first, second, strict=True):  # type: ignore[call-overload]
        if isinstance(a, nn.Conv2d):
            bias = None if a.bias is None else torch.cat([a.bias, b.bias])
            weight = torch.cat([a.weight, b.weight])
            h = F.conv2d(h, weight, bias, a.stride, a.padding, a.dilation, groups=2)
        elif isinstance(a, nn.InstanceNorm2d):
            h = F.group_norm(h, h.shape[1], eps=a.eps)
        else:
            h = a(h)
    ones, twos = h.chunk(2, 1)
    return ones, twos


def mixes_samples(net: nn.Module) -> bool:
    """Whether one call on stacked inputs would compute or keep something other than a call
    per input does: batch statistics (batch norm), running averages updated per call (any norm
    with track_running_stats), spectral norm's power iteration per call, or a plugin's module
    that says so (mixes_samples = True). Dropout draws other masks but from the same
    distribution, so it does not count."""
    return any(_module_mixes(m) for m in net.modules())


def _module_mixes(module: nn.Module) -> bool:
    if isinstance(module, _BatchNorm) or getattr(module, "track_running_stats", False):
        return True
    if any(isinstance(hook, SpectralNorm) for hook in module._forward_pre_hooks.values()):
        return True  # torch.nn.utils.spectral_norm
    if parametrize.is_parametrized(module):  # torch.nn.utils.parametrizations.spectral_norm
        chains = module.parametrizations.values()  # type: ignore[union-attr,operator]
        if any(isinstance(p, _SpectralNorm) for chain in chains for p in chain):
            return True
    return bool(getattr(module, "mixes_samples", False))


@contextlib.contextmanager
def buffers_kept(nets: Iterable[nn.Module]) -> Iterator[None]:
    """Calls that leave `nets`' buffers (batch norm's running statistics) as they found them."""
    saved = [(b, b.detach().clone()) for net in nets for b in net.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _differs_when_stacked(rt: Runtime, net: nn.Module, real_a: Tensor, real_b: Tensor) -> bool:
    dropouts = [x for x in net.modules() if isinstance(x, _DropoutNd) and x.training]
    devices = [real_a.device] if real_a.device.type == "cuda" else []
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        for x in dropouts:
            x.eval()
        torch.backends.cuda.matmul.allow_tf32 = False
        with (
            buffers_kept([net]),
            torch.random.fork_rng(devices=devices),
            torch.backends.cudnn.flags(enabled=True, allow_tf32=False),
            rt.uncompiled(),
        ):
            apart = torch.cat([net(real_a).float(), net(real_b).float()])
            stacked = net(torch.cat([real_a, real_b])).float()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        for x in dropouts:
            x.train()
    if stacked.shape != apart.shape:
        return True
    tolerance = 1e-3 * apart.abs().max().nan_to_num(0.0)
    return not bool(((stacked - apart).abs() <= tolerance).all())  # NaN compares as a difference
