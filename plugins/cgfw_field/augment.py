"""DiffAugment (Zhao et al. 2020, mit-han-lab/data-efficient-gans): differentiable colour,
translation and cutout applied to every image the discriminator sees, real and generated
alike, in its own update and in the generators' (gradients flow through to the generators).
Each image draws its own parameters; `p` applies the policy to each image with probability p
(1: always, the paper's setting)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor

from cgfw import Register, hookimpl


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


class DiffAugmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: list[str] = Field(
        default_factory=lambda: ["color", "translation", "cutout"],
        description="transformations in order: color, translation, cutout (the paper's all)",
    )
    p: float = Field(1.0, ge=0, le=1, description="probability an image is augmented")

    @field_validator("policy")
    @classmethod
    def _known(cls, policy: list[str]) -> list[str]:
        unknown = [p for p in policy if p not in POLICIES]
        if unknown:
            raise ValueError(f"unknown {unknown}; use any of {', '.join(POLICIES)}")
        return policy


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


@hookimpl
def register_augments(register: Register) -> None:
    register(
        "diffaugment",
        DiffAugment,
        DiffAugmentOptions,
        "DiffAugment: colour, translation, cutout on real and fake D inputs (Zhao et al. 2020)",
    )
