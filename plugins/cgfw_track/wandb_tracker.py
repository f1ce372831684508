"""Weights & Biases: the recipe as the run's config, every scalar with its step, sample grids
as images and `cgfw eval`'s metrics in the run's summary (pip install "cgfw[wandb]"). Offline
(`mode = "offline"` or WANDB_MODE=offline) it writes under RUN_DIR/wandb for `wandb sync`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, flatten, hookimpl

if TYPE_CHECKING:  # annotations only
    from torch import Tensor

    from cgfw import TrackedRun


class WandbOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str = Field("cgfw", description="the W&B project the run goes in")
    entity: str | None = Field(None, description="team or user; left out: your default")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="left out: WANDB_MODE, else online"
    )
    group: str | None = Field(None, description="e.g. an ablation's name, to group its runs")


class Wandb:
    """One W&B run per cgfw run, its id kept so a resumed run and `cgfw eval` continue it."""

    def __init__(self, options: WandbOptions, run: TrackedRun) -> None:
        import wandb

        run_id = run.saved.get("id") or uuid.uuid4().hex[:16]
        self.run = wandb.init(
            project=options.project,
            entity=options.entity,
            group=options.group,
            mode=options.mode,
            name=run.name,
            id=run_id,
            resume="allow",  # the same id again: continue that run
            dir=str(run.path),
            config=flatten(run.recipe),
            # Its own run object, not the global one: cgfw may run in a user's notebook
            # that has a run of its own (and several cgfw runs may follow each other).
            reinit="create_new",
        )
        self.state: dict[str, Any] = {"id": run_id, "project": options.project}

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def image(self, name: str, grid: Tensor, path: Path, step: int) -> None:
        import wandb

        self.run.log({name: wandb.Image(str(path))}, step=step)

    def summary(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.summary.update(dict(metrics))

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)


@hookimpl
def register_trackers(register: Register) -> None:
    register(
        "wandb",
        Wandb,
        WandbOptions,
        "Weights & Biases: recipe as config, scalars, sample grids, eval metrics (cgfw[wandb])",
        requires=("wandb", "wandb"),  # (package, cgfw extra)
    )
