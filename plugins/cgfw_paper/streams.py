"""Two streams: on a CPU, the CycleGAN's step runs as two streams of work at once, one per
direction (`CycleGAN._step_in_streams`), each on half the threads.

Why: a small network's operators are too small for two threads to share well. The quickstart's
step at two threads is only 1.27x its time at one. Two generators' forward and backward passes
run side by side, one thread each, take 0.66-0.76x the time of the two run one after the other
on both threads (docs/benchmarks.md, sixth pass).

What keeps it the same step: the streams touch disjoint state at any one time. Between two
joins, each network is called by one stream only, and each parameter's gradient is summed by
one stream only. Random numbers (the image pools) are drawn by the calling thread, in the
sequential step's order; a network or loss that draws them itself keeps the sequential step,
since two threads would interleave their draws (`draws_random`)."""

from __future__ import annotations

import os
import queue
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

import torch
from torch import nn

from cgfw_paper.stacking import buffers_kept

Here = TypeVar("Here")
There = TypeVar("There")


class Streams:
    """The calling thread and a second one, each running one of two callables at once on half
    of torch's intra-op threads."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], int, Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()  # one pair of jobs at a time
        threading.Thread(target=self._serve, name="cgfw-stream", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job, threads, done = self._jobs.get()
            torch.set_num_threads(threads)  # per thread: the caller's count is its own
            try:
                done.set_result(job())
            except BaseException as error:  # handed to the caller, who raises it
                done.set_exception(error)

    def both(self, here: Callable[[], Here], there: Callable[[], There]) -> tuple[Here, There]:
        """`here()` on this thread and `there()` on the other, at once; both results once both
        have ended. An error in either is raised here, after both have ended."""
        threads = torch.get_num_threads()
        if threads < 2:  # set to one thread since: no half to give, one after the other
            return here(), there()
        with self._lock:
            done: Future[There] = Future()
            self._jobs.put((there, threads // 2, done))
            torch.set_num_threads(threads - threads // 2)
            try:
                mine = here()
            except BaseException:
                _settled(done)  # the other stream may still be using the model
                raise
            finally:
                torch.set_num_threads(threads)
            _settled(done)
            return mine, done.result()


_shared: tuple[int, Streams] | None = None
_creating = threading.Lock()


def shared() -> Streams:
    """This process's `Streams` (one second thread however many models it trains); made anew
    in a forked child, which has no copy of the parent's thread."""
    global _shared
    with _creating:
        if _shared is None or _shared[0] != os.getpid():
            _shared = os.getpid(), Streams()
        return _shared[1]


def _settled(done: Future[Any]) -> None:
    """Wait for `done`, through Ctrl-C too (raised once the other stream has ended: until
    then it still computes gradients that a checkpoint written on the way out would race)."""
    interrupted = False
    while True:
        try:
            done.exception()
            break
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt


def draws_random(call: Callable[[], object], nets: Iterable[nn.Module] = ()) -> bool:
    """Whether `call()` draws from torch's or Python's global random generators. The states
    and `nets`' buffers (batch norm's running statistics) are restored after."""
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    try:
        with torch.no_grad(), buffers_kept(nets):
            call()
        return not (
            torch.equal(torch_state, torch.get_rng_state()) and python_state == random.getstate()
        )
    finally:
        torch.set_rng_state(torch_state)
        random.setstate(python_state)


def share_parameters(nets: Iterable[nn.Module]) -> bool:
    """Whether any parameter belongs to two of `nets` (two streams would sum into it at once)."""
    seen: set[int] = set()
    for net in nets:
        own = {id(p) for p in net.parameters()}
        if own & seen:
            return True
        seen |= own
    return False
