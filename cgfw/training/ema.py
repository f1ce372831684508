"""An exponential moving average of the generators (train.ema): samples, [eval], `cgfw eval`,
translate and export use the averaged weights by default; the trained ones stay what the
optimizers step. Any model: the networks averaged are those its directions translate with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from cgfw.training.model import Model


class EMA:
    def __init__(self, m: Model, decay: float) -> None:
        self.decay = decay
        self.names = sorted({m.directions[d][0] for d in m.directions})
        # state_dict() tensors share storage with the networks: they follow every step.
        self.live = {n: m.networks[n].state_dict() for n in self.names}
        self.avg = {n: {k: v.detach().clone() for k, v in s.items()} for n, s in self.live.items()}
        pairs = [(self.avg[n][k], v) for n in self.names for k, v in self.live[n].items()]
        self._floats = [(a, v) for a, v in pairs if v.is_floating_point()]
        self._others = [(a, v) for a, v in pairs if not v.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        """avg <- decay avg + (1 - decay) live; integer buffers (counters) are copied."""
        if self._floats:
            averages, live = zip(*self._floats, strict=True)
            torch._foreach_lerp_(list(averages), list(live), 1 - self.decay)
        for average, value in self._others:
            average.copy_(value)

    @contextlib.contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """The networks hold the averaged weights inside the block, their own after it."""
        saved = [v.clone() for _, v in self._floats + self._others]
        for average, value in self._floats + self._others:
            value.copy_(average)
        try:
            yield
        finally:
            for (_, value), own in zip(self._floats + self._others, saved, strict=True):
                value.copy_(own)

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        return self.avg

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        for name in self.names:
            for key, value in state[name].items():
                self.avg[name][key].copy_(value)
