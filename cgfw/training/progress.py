"""What a user sees while a run trains: the progress bar (it/s, ETA, losses), the trackers'
scalars and, without a terminal, a plain line every 10 s."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from torch import Tensor

from cgfw.training.tracking import Tracking


class SpeedColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} it/s" if speed else "-- it/s", style="progress.data.speed")


class LossLog:
    """Averages each loss term over a log window: the trackers' scalars, the progress bar's
    losses and, without a terminal (CI, nohup), a plain line every 10 s."""

    # The terms shown beside the bar, where a model has them; otherwise its first three.
    SHOWN = ("g_total", "d_a", "d_b")

    def __init__(self, tracking: Tracking | None, console: Console, total: int, start: int) -> None:
        self.tracking, self.console, self.total = tracking, console, total
        self.sums: dict[str, Tensor] = {}
        self.window = 0
        self.final: dict[str, float] = {}
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            SpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, losses="")
        self.start, self.started = start, time.perf_counter()
        self.last_line = self.started

    def add(self, terms: dict[str, Tensor]) -> None:
        for name, value in terms.items():  # stays on the device: no sync per step
            # A copy first: a CUDA graph's outputs are overwritten by its next replay.
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.window += 1

    def state(self) -> dict[str, Any]:
        """The open window and the last closed one's averages, for the checkpoint: a run
        resumed inside a window then logs the average of the same iterations an uninterrupted
        run would, and a run killed after its last step still has its final losses."""
        return {"sums": dict(self.sums), "window": self.window, "final": dict(self.final)}

    def load_state(self, state: Mapping[str, Any], device: torch.device) -> None:
        sums, window, final = state.get("sums", {}), state.get("window", 0), state.get("final", {})
        self.sums = {k: v.to(device) for k, v in sums.items()}
        self.window = window if isinstance(window, int) else 0
        self.final = {k: float(v) for k, v in final.items()}

    def flush(self, iteration: int, epoch: int, lr: float) -> None:
        self.final = {k: (v / self.window).item() for k, v in self.sums.items()}
        if self.tracking is not None:
            scalars = {f"loss/{name}": value for name, value in self.final.items()}
            self.tracking.scalars(scalars | {"lr": lr}, iteration)
        self.sums, self.window = {}, 0
        names = [k for k in self.SHOWN if k in self.final] or list(self.final)[:3]
        shown = " ".join(f"{k} {self.final[k]:.3f}" for k in names)
        self.progress.update(self.task, losses=shown)
        now = time.perf_counter()
        if not self.console.is_terminal and (now - self.last_line > 10 or iteration == self.total):
            rate = (iteration - self.start) / (now - self.started)
            eta = (self.total - iteration) / rate if rate else 0.0
            self.console.print(
                f"iter {iteration}/{self.total} epoch {epoch} "
                f"{rate:.1f} it/s ETA {eta:.0f}s {shown}"
            )
            self.last_line = now

    def advance(self, epoch: int) -> None:
        self.progress.update(self.task, advance=1, description=f"epoch {epoch}")
