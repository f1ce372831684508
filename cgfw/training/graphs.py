"""A model's whole training iteration as one CUDA graph: every network and optimizer update,
the image pools and the optimizers, replayed with one launch.

At batch 1 the step is bound by the host (about 1,000 kernel launches and Python per
iteration; docs/benchmarks.md), so replaying a captured graph is the way to feed a large GPU.
Networks compiled with torch.compile's default mode are captured too: the warm-up iterations
compile them (compiling during capture would fail), and the graph then replays the fused kernels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import torch
from torch import Tensor

from cgfw.errors import CgfwError
from cgfw.recipe import Resolved
from cgfw.training.model import Model, Speed

log = logging.getLogger("cgfw.train")
Step = Callable[[Tensor, Tensor], dict[str, Tensor]]
Shapes = tuple[tuple[int, ...], tuple[int, ...]]
WARMUP = 3  # iterations of a shape before its capture: cuDNN, autograd, torch.compile set up


def settings_obstacle(speed: Speed, device: torch.device, world: int) -> str | None:
    """Why the run's device and speed settings cannot be replayed as a CUDA graph, or None."""
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
    if speed.recompute:
        # Not captured with a recomputed backward on a GPU yet: eager steps until it has been.
        return "is not combined with train.activation_checkpointing yet"
    return None


def obstacle(speed: Speed, device: torch.device, world: int, model: Model) -> str | None:
    """Why this run cannot be replayed as a CUDA graph, or None; the model may have a reason of
    its own (the CycleGAN's image pool must declare graph_safe = True)."""
    return (
        settings_obstacle(speed, device, world)
        or type(model).graph_obstacle_for(model.resolved)
        or model.graph_obstacle()
    )


def check_graphable(speed: Speed, device: torch.device, world: int, model: Model) -> None:
    """The error for a run that asked for train.cuda_graph = true and cannot have it."""
    refuse(obstacle(speed, device, world, model))


def refuse(reason: str | None) -> None:
    if reason:
        raise CgfwError(f"train.cuda_graph {reason}; set train.cuda_graph = false")


def decide(
    speed: Speed, device: torch.device, world: int, resolved: Resolved, strict: bool
) -> Speed:
    """The speed to build the model for, before anything is built: with cuda_graph only if the
    settings and the model's class (on this recipe) allow a capture. `strict`
    (train.cuda_graph = true): a run that cannot be captured is an error; else ("auto") it
    quietly gets eager steps, and optimizers made for them."""
    if not speed.cuda_graph:
        return speed
    model: type[Model] = resolved.model_class
    reason = settings_obstacle(speed, device, world) or model.graph_obstacle_for(resolved)
    if strict:
        refuse(reason)
    return dataclasses.replace(speed, cuda_graph=False) if reason else speed


def ready(runs: dict[Shapes, int], shapes: Shapes) -> bool:
    """Capture a batch shape once it has warmed up (compiled, cuDNN tuned) and is the largest
    batch seen, so that a short last batch (or a resume that starts on one) is never captured."""
    largest = all(shapes[0][0] >= seen[0][0] for seen in runs)
    return runs.get(shapes, 0) >= WARMUP and largest


class GraphedStep:
    """Call like `step(real_a, real_b)`. Each batch shape's first WARMUP iterations run
    eagerly (they are real training iterations); then the next full-sized batch is captured,
    and every later batch of that shape replays the graph. Other shapes (a short last batch)
    run eagerly. The caller begins and ends each iteration (`train_iteration`) outside the
    graph: both are host-side, and a captured run has neither fp16 nor reduce-overhead.

    If the capture fails (a plugin that syncs with the host, an op CUDA cannot capture), a
    strict step (train.cuda_graph = true) stops with the reason; otherwise ("auto") it warns and
    trains on with eager steps, starting with the iteration whose capture failed."""

    def __init__(self, m: Model, strict: bool = True) -> None:
        self.device = m.rt.device
        check_graphable(m.rt.speed, self.device, m.rt.group.world, m)
        self.m, self.step, self.strict = m, m.step, strict
        self.runs: dict[Shapes, int] = {}  # eager runs per batch shape before the capture
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[Tensor, Tensor] | None = None
        self.outputs: dict[str, Tensor] = {}
        self.side = torch.cuda.Stream(self.device)
        self.eager = False  # capture failed: every call runs the plain step

    def __call__(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        if self.eager:
            return self.step(real_a, real_b)
        if self.graph is None:
            shapes = (tuple(real_a.shape), tuple(real_b.shape))
            if shapes not in self.runs:
                # Every shape warms up again after a new one, in case its compilation changed
                # what the others run (a few eager steps; with dynamic=False it should not).
                self.runs = dict.fromkeys(self.runs, 0)
            if not ready(self.runs, shapes):
                self.runs[shapes] = self.runs.get(shapes, 0) + 1
                # Warm-up on a side stream, as CUDA graph capture requires.
                self.side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(self.side):
                    terms = self.step(real_a, real_b)
                torch.cuda.current_stream(self.device).wait_stream(self.side)
                return terms
            self._capture(real_a, real_b)
            if self.eager:  # the capture failed; nothing captured ran, so run this iteration
                return self.step(real_a, real_b)
        assert self.graph is not None and self.static is not None
        if real_a.shape != self.static[0].shape or real_b.shape != self.static[1].shape:
            return self.step(real_a, real_b)
        self.static[0].copy_(real_a)
        self.static[1].copy_(real_b)
        self.graph.replay()
        return self.outputs  # overwritten by the next replay: read or copy before then

    def _capture(self, real_a: Tensor, real_b: Tensor) -> None:
        self.static = (real_a.clone(), real_b.clone())
        flags = [(p, p.requires_grad) for net in self.m.networks.values() for p in net.parameters()]
        graph, pool = torch.cuda.CUDAGraph(), torch.cuda.graph_pool_handle()
        here = torch.cuda.current_stream(self.device)
        broke: Exception | None = None  # what the step raised, if it did
        try:
            # The outer stream context puts `here` back even if ending the capture raises,
            # which torch.cuda.graph alone would leave on its capture stream.
            with torch.cuda.stream(here), torch.cuda.graph(graph, pool=pool):
                try:
                    self.outputs = self.step(*self.static)
                except Exception as exc:
                    broke = exc
                    raise
        except Exception as exc:
            for p, flag in flags:  # the step stopped part-way: as it found them
                p.requires_grad_(flag)
            _release(self.device, pool)
            self.static, self.outputs, self.eager = None, {}, True
            # Ending an invalidated capture raises a generic error: name what broke it.
            self._report(broke or exc, exc)
            return
        self.graph = graph

    def _report(self, first: Exception, raised: Exception) -> None:
        """`first`: what broke the capture; `raised`: what reached us (with its chain)."""
        line = (str(first).strip().splitlines() or [""])[0][:200]
        cause = f"{type(first).__name__}: {line}"
        log.debug("CUDA graph capture failed", exc_info=raised)
        if self.strict:
            raise CgfwError(
                f"train.cuda_graph: capturing the training iteration as a CUDA graph failed "
                f'({cause}); set train.cuda_graph = false, or "auto" to fall back to eager '
                "steps"
            ) from raised
        log.warning(
            "train.cuda_graph = auto: capturing the training iteration as a CUDA graph failed "
            "(%s); training on with eager steps (set train.cuda_graph = false to skip the try)",
            cause,
        )


def _release(device: torch.device, pool: tuple[int, int]) -> None:
    """Give a failed capture's memory back: torch skips this when ending the capture raises.
    Private torch API (renamed in torch 2.8), so best effort: what it cannot free stays
    allocated, and that is all. (The pinned host allocator's routing is not undone: no binding.)"""
    index = device.index if device.index is not None else torch.cuda.current_device()
    end = getattr(torch._C, "_cuda_endAllocateToPool", None) or getattr(
        torch._C, "_cuda_endAllocateCurrentStreamToPool", None
    )
    try:
        if end is not None:
            end(index, pool)
        torch._C._cuda_releasePool(index, pool)  # type: ignore[attr-defined]
    except Exception:  # a cleanup that cannot run must not hide the real error
        log.debug("could not release the failed capture's memory pool", exc_info=True)
