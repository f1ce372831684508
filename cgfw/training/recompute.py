"""Activation checkpointing (`train.activation_checkpointing`): a network keeps only its input
in the forward pass and runs its forward again in the backward pass, so a high-resolution step
holds one network call's activations at a time instead of those of every call (the CycleGAN's
generator step calls the generators three times with its inputs stacked, six with every call
apart). The losses and gradients are the same:
torch's non-reentrant checkpoint replays the forward under the random state it first ran with,
so dropout draws the same masks, and the global random stream goes on as without it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cgfw.errors import CgfwError


class Recomputed:
    """Mixed into a network's own class (`recompute`), so its state_dict keys, its copies (the
    EMA's) and every caller stay as they were. Without gradients (evaluation, samples, EMA
    copies) there is nothing to save and the forward runs once."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        plain = super().forward  # type: ignore[misc]
        if not torch.is_grad_enabled():
            return plain(*args, **kwargs)
        return checkpoint(plain, *args, use_reentrant=False, **kwargs)


def recompute(net: nn.Module, where: str) -> nn.Module:
    """`net`, recomputing its activations in the backward pass from now on. Batch norm with
    running statistics is refused: the recomputed forward would update them a second time."""
    counted = [
        type(m).__name__
        for m in net.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if counted:
        raise CgfwError(
            f"train.activation_checkpointing: {where} has {counted[0]} layers, whose running "
            "statistics the recomputed forward would update twice; use another norm "
            f'(e.g. {where}.norm = "instance") or leave {where} out of '
            "train.activation_checkpointing"
        )
    if not isinstance(net, Recomputed):
        net.__class__ = type(f"Recomputed{type(net).__name__}", (Recomputed, type(net)), {})
    return net
