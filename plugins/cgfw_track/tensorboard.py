"""TensorBoard: scalars, sample grids and HParams in the run's own directory (the default)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import cgfw
from cgfw import NoOptions, Register, hookimpl

if TYPE_CHECKING:  # annotations only
    from torch import Tensor

    from cgfw import TrackedRun


class TensorBoard:
    """Events in RUN_DIR, so `tensorboard --logdir runs` shows every run side by side."""

    def __init__(self, options: NoOptions, run: TrackedRun) -> None:
        self.run = run
        self.state: dict[str, object] = {}  # nothing to remember: events stay in RUN_DIR
        # Imported here: registering the tracker (cgfw plugins, recipe show) imports no torch.
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.path))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def text(self, name: str, text: str, step: int) -> None:
        self.writer.add_text(name, text, step)

    def image(self, name: str, grid: Tensor, path: Path, step: int) -> None:
        self.writer.add_image(name, grid, step)

    def summary(self, metrics: Mapping[str, float], step: int) -> None:
        # HParams: every recipe key beside the numbers, one row per run in the HParams tab.
        cgfw.write_hparams(self.writer, self.run.recipe, metrics, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


@hookimpl
def register_trackers(register: Register) -> None:
    register(
        "tensorboard",
        TensorBoard,
        NoOptions,
        "TensorBoard events in the run directory: scalars, sample grids, HParams (default)",
        default=True,  # on when a recipe names no tracker
    )
