"""MLflow: the flattened recipe as parameters, every scalar as a metric with its step, sample
grids as artifacts and `cgfw eval`'s metrics at the end (pip install "cgfw[mlflow]")."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, flatten, hookimpl

if TYPE_CHECKING:  # annotations only
    from torch import Tensor

    from cgfw import TrackedRun

# MLflow's limits: 100 parameters or 1000 metrics per batched call (mlflow.utils.validation).
PARAMS_PER_CALL, METRICS_PER_CALL = 100, 1000


class MlflowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        None,
        description="tracking URI, e.g. sqlite:///runs/mlflow.db or http://host:5000; left "
        "out: MLflow's own default (MLFLOW_TRACKING_URI, else ./mlruns)",
    )
    experiment: str = Field("cgfw", description="the MLflow experiment the run goes in")


class Mlflow:
    """One MLflow run per cgfw run; a resumed run and `cgfw eval` continue it by its id."""

    def __init__(self, options: MlflowOptions, run: TrackedRun) -> None:
        from mlflow.tracking import MlflowClient

        # A client of its own, not mlflow's global active run: cgfw may run inside a user's
        # script or notebook that has an active run of its own.
        self.client = MlflowClient(tracking_uri=options.uri)
        run_id = run.saved.get("run_id")
        self.before = "RUNNING"  # the run's status when opened
        if run_id is None:
            experiment = self.client.get_experiment_by_name(options.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self.client.create_experiment(options.experiment)
            )
            tags = {"cgfw.run_dir": str(run.path.resolve())}
            created = self.client.create_run(experiment_id, run_name=run.name, tags=tags)
            self.run_id: str = created.info.run_id
            self._params(flatten(run.recipe))
        else:  # resumed, or `cgfw eval`: the same MLflow run again
            self.run_id = run_id
            self.before = self.client.get_run(run_id).info.status
            self.client.update_run(run_id, status="RUNNING")
        self.state: dict[str, Any] = {"run_id": self.run_id, "uri": options.uri}

    def _params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=items[i : i + PARAMS_PER_CALL])

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in values.items()]
        for i in range(0, len(items), METRICS_PER_CALL):
            self.client.log_batch(self.run_id, metrics=items[i : i + METRICS_PER_CALL])

    def image(self, name: str, grid: Tensor, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=name)

    def summary(self, metrics: Mapping[str, float], step: int) -> None:
        self.scalars(metrics, step)

    def close(self, status: str) -> None:
        if status == "evaluated":  # `cgfw eval` leaves the run as it found it
            mlflow_status = self.before
            if mlflow_status == "RUNNING":  # still training elsewhere
                return
        else:
            mlflow_status = {"finished": "FINISHED", "stopped": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, status=mlflow_status)


@hookimpl
def register_trackers(register: Register) -> None:
    register(
        "mlflow",
        Mlflow,
        MlflowOptions,
        "MLflow: recipe as params, scalars, sample grids as artifacts, eval metrics (cgfw[mlflow])",
        requires=("mlflow", "mlflow"),  # (package, cgfw extra)
    )
