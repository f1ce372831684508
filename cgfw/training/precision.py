"""How a run's arithmetic is done: one `Precision`, made from the resolved `Speed` before any
network or optimizer is built, owns autocast, the backward pass, the optimizer step and the fp16
loss scaler with its state. The engine begins and ends each iteration around the model's step
(cgfw/trainer.py `train_iteration`), so a model only calls `rt.autocast()` and
`rt.optimizer_step(...)` and never touches the scaler."""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from cgfw.training.model import Speed


class Precision:
    def __init__(self, speed: Speed, device: torch.device) -> None:
        self.speed, self.device = speed, device
        # Scales fp16 losses so that small gradients survive; a pass-through otherwise.
        self.scaler = torch.amp.GradScaler(device.type, enabled=speed.precision == "fp16")
        self._stepped = False  # an optimizer stepped since the last end_iteration

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = self.speed.dtype
        if dtype is None:
            return contextlib.nullcontext()
        # A CUDA graph must not keep autocast's cached weight casts from capture time.
        return torch.autocast(
            self.device.type, dtype=dtype, cache_enabled=not self.speed.cuda_graph
        )

    def backward(self, loss: Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, opt: torch.optim.Optimizer) -> None:
        """The optimizer's step on unscaled gradients; under fp16 skipped when they overflowed
        (the scaler then lowers its scale at the end of the iteration)."""
        self.scaler.step(opt)
        self._stepped = True

    def begin_iteration(self) -> None:
        """Tell CUDA graphs (compile mode reduce-overhead) that the last iteration's outputs are
        dead, so they can replay on their fast path; a no-op otherwise."""
        if self.speed.compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()

    def end_iteration(self) -> None:
        """Adjust the fp16 loss scale once per iteration, after every optimizer has stepped
        (GradScaler allows one step per optimizer between updates)."""
        if self._stepped:  # an iteration that stepped nothing has nothing to update from
            self.scaler.update()
        self._stepped = False

    def state_dict(self) -> dict[str, Any]:
        """The loss scaler's state (empty when it is disabled), the checkpoint's "scaler"."""
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:  # a checkpoint of a run without fp16 holds an empty one
            self.scaler.load_state_dict(state)


class EngineScaler:
    """What `rt.scaler` gives a model written before the engine updated the scaler itself:
    `scale` and `step` work as they did; `update` does nothing (the engine updates once, at the
    end of the iteration) and says so once."""

    def __init__(self, precision: Precision) -> None:
        self._precision = precision
        self._warned = False

    def scale(self, loss: Tensor) -> Tensor:
        return self._precision.scaler.scale(loss)

    def step(self, opt: torch.optim.Optimizer) -> None:
        self._precision.step(opt)

    def update(self) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                "rt.scaler.update() is no longer needed: the engine updates the loss scaler at "
                "the end of each iteration; remove the call (it does nothing now)",
                DeprecationWarning,
                stacklevel=2,
            )

    def __getattr__(self, name: str) -> Any:  # is_enabled, get_scale, unscale_, state_dict ...
        return getattr(self._precision.scaler, name)
