"""`cgfw ARGS...`, SIGKILLed at a chosen moment: what a power cut, the OOM killer or a
scheduler's hard kill leaves on disk, at a point a test can name instead of racing a timer.

    python -m tests.faults.killer POINT ARGS...

POINT is `step:K` (before iteration K's step: iterations up to K - 1 done, and whatever they
checkpointed), `save:K` (inside the checkpoint write at iteration K: the temporary file half
written) or `final` (after the last checkpoint, before final_losses.json). `term:K` is no kill
but a SIGTERM in iteration K's step (the run checkpoints there and exits 143); `stop:K` is no kill
but the signals a scheduler sends: SIGTERM in iteration K's step and SIGUSR1 just before
final_losses.json is written."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def before_step(iteration: int, act: Callable[[], None]) -> None:
    """`act()` as iteration `iteration`'s step is about to run (then the step runs, if it
    still can)."""
    from cgfw.training import loop

    step = loop.train_iteration

    def train_iteration(*args: Any) -> None:
        if args[5] == iteration:  # the iteration about to run
            act()
        step(*args)

    loop.train_iteration = train_iteration


def arm(point: str) -> None:
    from cgfw.store import checkpoint
    from cgfw.store.layout import RunDir

    kind, _, at = point.partition(":")
    if kind == "step":
        before_step(int(at), die)
    elif kind == "save":
        save = checkpoint.torch.save

        def half_save(state: dict[str, Any], f: Any) -> None:
            if state[checkpoint.K_ITERATION] == int(at):
                f.write(b"PK\x03\x04 half a checkpoint")
                f.flush()
                die()
            save(state, f)

        checkpoint.torch.save = half_save  # type: ignore[assignment]
    elif kind in ("term", "stop"):  # SIGTERM in iteration K's step: the run stops there
        before_step(int(at), lambda: os.kill(os.getpid(), signal.SIGTERM))
        if kind == "stop":  # and SIGUSR1 just before final_losses.json is written
            write = RunDir.write_final_losses

            def signalled_write(self: RunDir, losses: dict[str, float]) -> None:
                os.kill(os.getpid(), signal.SIGUSR1)
                write(self, losses)

            RunDir.write_final_losses = signalled_write  # type: ignore[method-assign]
    elif kind == "final":
        RunDir.write_final_losses = lambda self, losses: die()  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    from cgfw.cli import main

    main(sys.argv[2:])
