"""The `slurm` launcher: an ablation's runs as one Slurm job array, through submitit.

    cgfw ablate RECIPE --disable identity --seeds 0,1,2 --launcher slurm \\
        --launcher-opt partition=gpu,gpus_per_node=1,timeout_min=720

Each array task runs `cgfw run` for one run directory under the ablation's folder (which must
be on storage the nodes share). A task that Slurm preempts or that reaches its time limit gets
a signal, checkpoints, is requeued and resumes from its latest checkpoint (slurm_job.py).
submitit's own logs go to PARENT/slurm/, the job ids to PARENT/slurm/jobs.json."""

from __future__ import annotations

import shutil
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cgfw import AblationDir, Batch, Register, RunDir, finished_losses, hookimpl
from cgfw.errors import CgfwError


class SlurmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: str | None = Field(
        None, description="the partition; left out: the cluster's default"
    )
    timeout_min: int = Field(
        720,
        ge=1,
        description="each task's time limit; a run longer than that checkpoints and is requeued",
    )
    gpus_per_node: int = Field(
        0, ge=0, description="GPUs per run; more than 1: data parallel through torchrun"
    )
    cpus_per_task: int | None = Field(None, ge=1, description="left out: 1, or 8 per GPU")
    mem_gb: float | None = Field(None, gt=0, description="memory per run; left out: the default")
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = Field(
        [],
        description='shell lines run before each task, e.g. ["module load cuda"]',
    )
    additional: dict[str, Any] = Field(
        {}, description="more sbatch options, e.g. {exclude = 'node12'}"
    )
    max_requeues: int = Field(
        3, ge=0, description="time-limit requeues per task (preemptions do not count)"
    )
    wait: bool = Field(False, description="wait for every task and print the table at the end")


class Slurm:
    def __init__(self, options: SlurmOptions) -> None:
        self.options = options

    def launch(self, batch: Batch) -> dict[str, dict[str, float]] | None:
        import submitit

        from cgfw_launch.slurm_job import SlurmRun

        o = self.options
        folder = batch.parent / "slurm"
        executor = submitit.AutoExecutor(
            folder=folder / "%j", cluster="slurm", slurm_max_num_timeout=o.max_requeues
        )
        from cgfw_launch.slurm_job import STOP_WAIT_S

        cpus = o.cpus_per_task or (8 * o.gpus_per_node if o.gpus_per_node else 1)
        additional = {"requeue": True} | o.additional  # clusters with JobRequeue=0 need it
        for key, value in (("account", o.account), ("qos", o.qos), ("constraint", o.constraint)):
            if value is not None:
                additional[key] = value
        parameters: dict[str, Any] = {
            "name": batch.parent.name,
            "timeout_min": o.timeout_min,
            "nodes": 1,
            "tasks_per_node": 1,  # one `cgfw run` (or torchrun) per task
            "cpus_per_task": cpus,
            "slurm_array_parallelism": batch.jobs if batch.jobs > 1 else len(batch.runs),
            "slurm_additional_parameters": additional,
            "slurm_setup": o.setup,
            # The time-limit warning comes early enough for a run to finish its step and
            # checkpoint (STOP_WAIT_S) before Slurm kills the task.
            "slurm_signal_delay_s": STOP_WAIT_S + 60,
        }
        if o.partition:
            parameters["slurm_partition"] = o.partition
        if o.gpus_per_node:
            parameters["gpus_per_node"] = o.gpus_per_node
        if o.mem_gb:
            parameters["mem_gb"] = o.mem_gb
        executor.update_parameters(**parameters)
        try:
            with executor.batch():
                submitted = [
                    executor.submit(SlurmRun(str(run_dir), o.gpus_per_node, batch.device))
                    for run_dir in batch.runs
                ]
        except Exception as exc:  # sbatch missing or refusing: a partition, account, limit
            shutil.rmtree(batch.parent)  # only the planned, empty run directories
            raise CgfwError(
                f"Slurm did not take the job array: {type(exc).__name__}: {exc}".strip()
                + "\n(check --launcher-opt partition, account, qos and the limits with sinfo)"
            ) from None
        jobs = {
            run_dir.name: job.job_id for run_dir, job in zip(batch.runs, submitted, strict=True)
        }
        AblationDir(batch.parent).write_jobs(jobs)
        first = submitted[0].job_id.split("_")[0]
        batch.console.print(
            f"submitted {len(jobs)} run(s) as Slurm job array {first} (squeue -j {first}); "
            f"logs in {folder}"
        )
        if not o.wait:
            batch.console.print(f"as they finish: cgfw compare {batch.parent}")
            return None
        return _wait(batch, submitted)


def _wait(batch: Batch, submitted: list[Any]) -> dict[str, dict[str, float]]:
    """Every task's final losses once it is done; a failed one reports {} and its log."""
    results: dict[str, dict[str, float]] = {}
    pending = dict(zip(batch.runs, submitted, strict=True))
    while pending:
        time.sleep(2)
        for run_dir, job in list(pending.items()):
            if not job.done():  # done() reads submitit's result file: no accounting needed
                continue
            del pending[run_dir]
            losses = finished_losses(run_dir)
            if losses is not None:
                results[run_dir.name] = losses
                batch.console.print(f"finished {run_dir.name}")
            else:
                results[run_dir.name] = {}
                batch.console.print(
                    f"[red]{run_dir.name} failed: {RunDir(run_dir).log}, {job.paths.stderr}[/red]"
                )
    return {p.name: results[p.name] for p in batch.runs}


@hookimpl
def register_launchers(register: Register) -> None:
    register(
        "slurm",
        Slurm,
        SlurmOptions,
        "a Slurm job array through submitit; preempted or timed-out runs resume (cgfw[slurm])",
        requires=("submitit", "slurm"),  # (package, cgfw extra)
    )
