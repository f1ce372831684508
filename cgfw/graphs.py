"""The whole CycleGAN iteration as one CUDA graph: both generator and discriminator updates,
the image pools and the optimizers, replayed with one launch.

At batch 1 the step is bound by the host (about 1,000 kernel launches and Python per
iteration; docs/benchmarks.md), so replaying a captured graph is the way to feed a large GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from cgfw.errors import CgfwError
from cgfw.model import CycleGAN

Step = Callable[[CycleGAN, Tensor, Tensor], dict[str, Tensor]]
WARMUP = 3  # eager iterations before capture: cuDNN and autograd set themselves up


def check_graphable(m: CycleGAN) -> None:
    if m.device.type != "cuda":
        raise CgfwError("train.cuda_graph needs a CUDA device; set it to false on CPU")
    if m.speed.precision == "fp16":
        raise CgfwError(
            "train.cuda_graph does not work with fp16 (its loss scaler syncs); use bf16"
        )
    if m.group.world > 1:
        raise CgfwError("train.cuda_graph is not supported with several processes yet")
    for pool in (m.pool_a, m.pool_b):
        if not getattr(pool, "graph_safe", False):
            raise CgfwError(
                f"buffer {type(pool).__name__} does not declare graph_safe = True (it may make "
                "host-side random choices a graph would freeze); set train.cuda_graph = false"
            )


class GraphedStep:
    """Call like `step(m, real_a, real_b)`. The first WARMUP iterations run eagerly (they are
    real training iterations), the next is captured and replayed, and every later one replays.
    Batches of another shape (a short last batch) run eagerly."""

    def __init__(self, m: CycleGAN, step: Step) -> None:
        check_graphable(m)
        self.m, self.step = m, step
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[Tensor, Tensor] | None = None
        self.outputs: dict[str, Tensor] = {}
        self.side = torch.cuda.Stream(m.device)

    def __call__(self, m: CycleGAN, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        if self.graph is None and self.calls <= WARMUP:
            # Warm-up on a side stream, as CUDA graph capture requires.
            self.side.wait_stream(torch.cuda.current_stream(m.device))
            with torch.cuda.stream(self.side):
                terms = self.step(m, real_a, real_b)
            torch.cuda.current_stream(m.device).wait_stream(self.side)
            return terms
        if self.graph is None:
            self.static = (real_a.clone(), real_b.clone())
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs = self.step(m, *self.static)
        assert self.static is not None
        if real_a.shape != self.static[0].shape or real_b.shape != self.static[1].shape:
            return self.step(m, real_a, real_b)
        self.static[0].copy_(real_a)
        self.static[1].copy_(real_b)
        self.graph.replay()
        return self.outputs  # overwritten by the next replay: read or copy before then
