"""Where an ablation's runs train: registered `launcher` components (`cgfw ablate --launcher`).

A launcher gets the planned runs, each with its directory already made and its recipe written
there as variant.toml, and starts `cgfw run` for each (`run_command`): in this process, as
local processes side by side, or as one Slurm job array. Whatever runs them, a run is the same
directory with the same files, so `cgfw compare PARENT` and `cgfw eval` work unchanged."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import Resolved
from cgfw.store.layout import RunDir


@dataclass
class Batch:
    """The runs of one ablation, for a launcher to start."""

    parent: Path  # the ablation's folder: one directory per run inside
    runs: dict[Path, Resolved]  # run directory -> its resolved recipe (also in RUN/variant.toml)
    loaded: Loaded
    device: str | None  # --device, if given
    jobs: int  # at most this many at once (--jobs)
    console: Console


class Launcher(Protocol):
    """``factory(options) -> Launcher``; ``launch`` returns each run's final losses by run
    name when it waited for the runs, or None when they were handed to a scheduler and go on
    after the command returns (`cgfw compare PARENT` shows them as they finish)."""

    def launch(self, batch: Batch) -> dict[str, dict[str, float]] | None: ...


def finished_losses(run_dir: Path) -> dict[str, float] | None:
    """A run's final losses once it has finished (final_losses.json), else None."""
    path = RunDir(run_dir).final_losses
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def run_command(run_dir: Path, device: str | None = None, processes: int = 1) -> list[str]:
    """`cgfw run` for one planned run: from its variant.toml, or from its latest checkpoint
    when it has one (a job that was preempted or timed out and started again). With
    `processes` > 1, under torchrun: data parallel on one machine."""
    from cgfw.store import checkpoint  # torch: here, so registering a launcher imports none

    try:
        resume = checkpoint.latest_in(RunDir(run_dir).checkpoints).is_file()
    except CgfwError:  # none yet: start it (again, if a first try died before checkpointing)
        resume = False
    if processes > 1:
        torchrun = shutil.which("torchrun") or "torchrun"
        command = [torchrun, "--standalone", f"--nproc-per-node={processes}", "-m", "cgfw"]
    else:
        command = [sys.executable, "-m", "cgfw"]
    command += ["run", "--resume", str(run_dir)] if resume else [
        "run", str(RunDir(run_dir).variant), "--into", str(run_dir)
    ]  # fmt: skip
    return command + (["--device", device] if device else [])
