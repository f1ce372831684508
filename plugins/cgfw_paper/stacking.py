"""Stacked calls: a network run once on same-sized inputs stacked along the batch computes
what a call per input would, with kernels twice the size (which at batch 1 keep more of a GPU
busy), unless it mixes samples. Which networks do is decided by their modules' types and, on
the first batch, by measurement (docs/plugins.md, "Stacked calls")."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.spectral_norm import SpectralNorm

from cgfw import Runtime

log = logging.getLogger("cgfw.train")


class Stacking:
    """Which networks may take stacked inputs: all, unless train.stack_calls is false, but
    those in `apart` (they mix samples, by type or as measured)."""

    def __init__(self, enabled: bool, nets: Iterable[nn.Module]) -> None:
        self.enabled = enabled
        self.apart: list[nn.Module] = [n for n in nets if mixes_samples(n)]
        self.checked = False

    def stacks(self, net: nn.Module) -> bool:
        return self.enabled and not any(net is other for other in self.apart)

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


def _differs_when_stacked(rt: Runtime, net: nn.Module, real_a: Tensor, real_b: Tensor) -> bool:
    saved = [b.detach().clone() for b in net.buffers()]
    dropouts = [x for x in net.modules() if isinstance(x, _DropoutNd) and x.training]
    devices = [real_a.device] if real_a.device.type == "cuda" else []
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        for x in dropouts:
            x.eval()
        torch.backends.cuda.matmul.allow_tf32 = False
        with (
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
        for buffer, value in zip(net.buffers(), saved, strict=True):
            buffer.copy_(value)
    if stacked.shape != apart.shape:
        return True
    tolerance = 1e-3 * apart.abs().max().nan_to_num(0.0)
    return not bool(((stacked - apart).abs() <= tolerance).all())  # NaN compares as a difference
