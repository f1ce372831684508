"""Weight initialisation for any network, as in the authors' code: conv and linear weights from
the chosen scheme, biases zero, batch-norm scales N(1, gain)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def init_weights(net: nn.Module, scheme: str, gain: float) -> None:
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            # A parametrised weight (spectral norm) is computed from `original`: set that.
            weight: torch.Tensor = m.weight
            if parametrize.is_parametrized(m, "weight"):
                weight = m.parametrizations.weight.original  # type: ignore[union-attr,assignment]
            if scheme == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif scheme == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif scheme == "orthogonal":
                nn.init.orthogonal_(weight, gain=gain)
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
