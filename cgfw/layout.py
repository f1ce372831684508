"""The one place that knows a run directory's layout. Everything else asks `RunDir`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """RUN_DIR/
    recipe.toml         the resolved recipe, every default filled in (written before training)
    run.json            provenance: versions, device, command, plugins; resume.json, resume2.json
    final_losses.json   the last log window's loss terms
    metrics.json        `cgfw eval`'s results
    trackers.json       the trackers' run ids (MLflow, W&B), so resume and eval continue them
    checkpoints/        latest.pt and previous.pt
    samples/            iter_0001000.png, ...: the fixed images' grids
    export/             `cgfw export`'s files
    events.out.tfevents.*  TensorBoard (scalars, images, HParams)"""

    path: Path

    @property
    def recipe(self) -> Path:
        return self.path / "recipe.toml"

    @property
    def provenance(self) -> Path:
        return self.path / "run.json"

    def resume_record(self) -> Path:
        """resume.json for the first resume, resume2.json for the second, ..."""
        count = len(list(self.path.glob("resume*.json")))
        return self.path / f"resume{count + 1 if count else ''}.json"

    @property
    def final_losses(self) -> Path:
        return self.path / "final_losses.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def trackers(self) -> Path:
        """What each tracker needs to continue its run (MLflow's run id, ...)."""
        return self.path / "trackers.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def sample(self, iteration: int) -> Path:
        return self.path / "samples" / f"iter_{iteration:07d}.png"

    @property
    def export(self) -> Path:
        return self.path / "export"

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    def events(self) -> list[Path]:
        return sorted(self.path.glob("events.out.tfevents.*"))

    def is_run(self) -> bool:
        return self.recipe.is_file()
