"""The whole CycleGAN iteration as one CUDA graph: both generator and discriminator updates,
the image pools and the optimizers, replayed with one launch.

At batch 1 the step is bound by the host (about 1,000 kernel launches and Python per
iteration; docs/benchmarks.md), so replaying a captured graph is the way to feed a large GPU.
Networks compiled with torch.compile's default mode are captured too: the warm-up iterations
compile them (compiling during capture would fail), and the graph then replays the fused kernels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

from cgfw.errors import CgfwError
from cgfw.model import CycleGAN, Speed

log = logging.getLogger("cgfw.train")
Step = Callable[[CycleGAN, Tensor, Tensor], dict[str, Tensor]]
WARMUP = 3  # iterations before capture: cuDNN, autograd and torch.compile set themselves up


def obstacle(speed: Speed, device: torch.device, world: int, buffer: object) -> str | None:
    """Why this run cannot be replayed as a CUDA graph, or None. `buffer` is the buffer
    component's factory or an instance: it must declare graph_safe = True."""
    if device.type != "cuda":
        return "needs a CUDA device"
    if speed.precision == "fp16":
        return "does not work with fp16 (its loss scaler syncs with the host); use bf16"
    if speed.channels_last:
        return "fails to capture channels_last convolutions (cuDNN, H100, torch 2.11)"
    if speed.compile in ("reduce-overhead", "max-autotune"):
        # These modes capture CUDA graphs of their own; a graph cannot be captured inside one.
        return f'is not combined with train.compile = "{speed.compile}"; use "default" or "off"'
    if world > 1:
        return "is not supported with several processes yet"
    if not getattr(buffer, "graph_safe", False):
        name = getattr(buffer, "__name__", type(buffer).__name__)
        return (
            f"needs a buffer that declares graph_safe = True ({name} may make host-side "
            "random choices that a graph would freeze)"
        )
    return None


def check_graphable(m: CycleGAN) -> None:
    reason = obstacle(m.speed, m.device, m.group.world, m.pool_a)
    if reason:
        raise CgfwError(f"train.cuda_graph {reason}; set train.cuda_graph = false")


class GraphedStep:
    """Call like `step(m, real_a, real_b)`. The first WARMUP iterations run eagerly (they are
    real training iterations), the next is captured and replayed, and every later one replays.
    Batches of another shape (a short last batch) run eagerly.

    If the capture fails (a plugin that syncs with the host, an op CUDA cannot capture), a
    strict step (train.cuda_graph = true) stops with the reason; otherwise ("auto") it warns and
    trains on with eager steps, starting with the iteration whose capture failed."""

    def __init__(self, m: CycleGAN, step: Step, strict: bool = True) -> None:
        check_graphable(m)
        self.m, self.step, self.strict = m, step, strict
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[Tensor, Tensor] | None = None
        self.outputs: dict[str, Tensor] = {}
        self.side = torch.cuda.Stream(m.device)
        self.eager = False  # capture failed: every call runs the plain step

    def __call__(self, m: CycleGAN, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        if self.eager:
            return self.step(m, real_a, real_b)
        if self.graph is None and self.calls <= WARMUP:
            # Warm-up on a side stream, as CUDA graph capture requires.
            self.side.wait_stream(torch.cuda.current_stream(m.device))
            with torch.cuda.stream(self.side):
                terms = self.step(m, real_a, real_b)
            torch.cuda.current_stream(m.device).wait_stream(self.side)
            return terms
        if self.graph is None:
            self.static = (real_a.clone(), real_b.clone())
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self.outputs = self.step(m, *self.static)
            except Exception as exc:  # nothing captured ran: this iteration has not happened
                self._give_up(m, exc)
                return self.step(m, real_a, real_b)
            self.graph = graph
        assert self.static is not None
        if real_a.shape != self.static[0].shape or real_b.shape != self.static[1].shape:
            return self.step(m, real_a, real_b)
        self.static[0].copy_(real_a)
        self.static[1].copy_(real_b)
        self.graph.replay()
        return self.outputs  # overwritten by the next replay: read or copy before then

    def _give_up(self, m: CycleGAN, exc: Exception) -> None:
        # The step stopped part-way: leave every network trainable, as a finished step does.
        for net in m.networks().values():
            net.requires_grad_(True)
        self.static, self.outputs, self.eager = None, {}, True
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        cause = f"{type(exc).__name__}: {first_line}"
        if self.strict:
            raise CgfwError(
                f"train.cuda_graph: capturing the training iteration as a CUDA graph failed "
                f'({cause}); set train.cuda_graph = false, or "auto" to fall back to eager '
                "steps"
            ) from exc
        log.warning(
            "train.cuda_graph = auto: capturing the training iteration as a CUDA graph failed "
            "(%s); training on with eager steps (set train.cuda_graph = false to skip the try)",
            cause,
        )
