"""DiffAugment's transformations (Zhao et al. 2020): imported when a run builds the augment
(augment.py registers it lazily, with its options)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from cgfw_field.augment import DiffAugmentOptions


def brightness(x: Tensor) -> Tensor:
    return x + (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def saturation(x: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean


def contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ratio x its size, filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # the border row and column are the zeros shifted in
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a square of ratio x the size at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    rows = (torch.arange(ch, device=x.device)[None, :, None] + cy - ch // 2).clamp(0, h - 1)
    cols = (torch.arange(cw, device=x.device)[None, None, :] + cx - cw // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(n, device=x.device)[:, None, None], rows, cols] = 0
    return x * mask.unsqueeze(1)


POLICIES: dict[str, list[Callable[[Tensor], Tensor]]] = {
    "color": [brightness, saturation, contrast],
    "translation": [translation],
    "cutout": [cutout],
}


class DiffAugment:
    graph_safe = True  # device-side random draws only

    def __init__(self, options: DiffAugmentOptions) -> None:
        self.fns = [f for name in options.policy for f in POLICIES[name]]
        self.p = options.p

    def __call__(self, x: Tensor) -> Tensor:
        out = x
        for f in self.fns:
            out = f(out)
        if self.p >= 1:
            return out
        keep = torch.rand(len(x), 1, 1, 1, device=x.device) < self.p
        return torch.where(keep, out, x)
