"""submitit against a real local Slurm cluster (tests/slurm_cluster.py): a job array, and a
checkpointable job that is preempted, requeued by Slurm and resumed from its checkpoint.

Needs root and Slurm installed (scripts/install_slurm.sh); skips otherwise. The `slurm`
fixture comes from tests/launchers/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

submitit = pytest.importorskip("submitit")

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
# Bounds on the waits below, so a broken cluster fails the test instead of hanging it
# (submitit's own wait has no timeout).
JOB_TIMEOUT_S = 60.0


def _square(x: int) -> int:
    return x * x


class Counter(submitit.helpers.Checkpointable):
    """Counts to `until`, one step per 0.2 s, writing the count to `work/counter`.

    Each start writes `work/start-<n>` holding the count it starts from, so the test sees
    both how many times the job ran and that the second run resumed instead of restarting.
    The inherited checkpoint() resubmits `self`, pickled with its current count.
    """

    def __init__(self, until: int) -> None:
        self.until = until
        self.count = 0

    def __call__(self, work: str) -> int:
        folder = Path(work)
        starts = len(list(folder.glob("start-*")))
        (folder / f"start-{starts}").write_text(str(self.count))
        while self.count < self.until:
            time.sleep(0.2)
            self.count += 1
            (folder / "counter").write_text(str(self.count))
        return self.count


def _executor(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A slurm AutoExecutor for 1-CPU jobs on the test cluster's partition."""
    # The job unpickles functions from this module by reference: let it import `tests`
    # wherever pytest was started from (sbatch passes our environment on to the job).
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    # submitit calls a signalled job "timed-out" rather than "preempted" once it has run
    # min(0.8 * timeout, timeout - 10 min): with under 10 minutes, always. An hour keeps
    # the interrupt below a preemption (both requeue a Checkpointable; a time-out also
    # spends one of slurm_max_num_timeout).
    executor.update_parameters(timeout_min=60, cpus_per_task=1, slurm_partition="cgfw")
    return executor


def _until(what: str, ready: Callable[[], bool], timeout: float, jobs: Sequence[Any]) -> None:
    """Poll until ready; on timeout fail with the queue and the jobs' logs."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            queue = subprocess.run(["squeue"], capture_output=True, text=True, check=False).stdout
            logs = "\n".join(f"{job.job_id}:\n{job.stdout()}\n{job.stderr()}" for job in jobs)
            pytest.fail(f"{what} not within {timeout:.0f} s\n{queue}\n{logs}")
        time.sleep(0.2)


def _scontrol_job(job_id: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout


def test_job_array(slurm: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executor = _executor(tmp_path / "jobs", monkeypatch)
    jobs = executor.map_array(_square, [1, 2, 3])
    # One sbatch --array: ids <array id>_<task>.
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1
    assert sorted(job.job_id.split("_")[1] for job in jobs) == ["0", "1", "2"]
    _until("array done", lambda: all(job.done() for job in jobs), JOB_TIMEOUT_S, jobs)
    assert [job.result() for job in jobs] == [1, 4, 9]


def test_preempted_job_resumes(
    slurm: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    counter = work / "counter"
    executor = _executor(tmp_path / "jobs", monkeypatch)
    job = executor.submit(Counter(until=40), str(work))

    def count() -> int:
        return int(counter.read_text() or 0) if counter.exists() else 0

    _until("first run counting", lambda: count() >= 5, JOB_TIMEOUT_S, [job])
    # What submitit's tests call preemption: scancel --signal SIGTERM (ignored by the job),
    # then --signal USR2 (the job checkpoints, runs `scontrol requeue <id>` and exits).
    job._interrupt()
    seen = count()
    _until("requeued run done", job.done, JOB_TIMEOUT_S, [job])

    assert job.result() == 40
    starts = sorted(work.glob("start-*"))
    assert [path.name for path in starts] == ["start-0", "start-1"]
    assert starts[0].read_text() == "0"
    # The second run started from the checkpointed count, not from zero.
    assert int(starts[1].read_text()) >= seen
    assert "Restarts=1" in _scontrol_job(job.job_id)
    log = job.stdout()  # submitit's INFO lines, both runs (sbatch --open-mode=append)
    assert log.count("Starting with JobEnvironment") == 2
    assert "this job is preempted" in log
    assert f"Requeued job {job.job_id}" in log
