"""`cgfw ablate --launcher slurm` on a real one-node Slurm cluster (tests/slurm_cluster.py): one
job array, one of its tasks preempted the way submitit's own tests do it, requeued, resumed
from its checkpoint, and every run finished.

Needs root and Slurm (scripts/install_slurm.sh, which .ci/run calls); skips otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cgfw.store import checkpoint
from tests.conftest import TINY

pytest.importorskip("submitit")
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ITERS = 300  # long enough to be caught mid-run on a busy machine, a minute at most
DEADLINE_S = 300.0


def _wait(what: str, ready: object, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if proc.poll() is not None or time.monotonic() > deadline:
            queue = subprocess.run(["squeue"], capture_output=True, text=True, check=False)
            out = proc.stdout.read() if proc.poll() is not None and proc.stdout else ""
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{queue.stdout}\n{out}")
        time.sleep(0.5)


def test_a_preempted_task_checkpoints_requeues_and_resumes(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY.format(out=tmp_path / "runs"), encoding="utf-8")
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # sbatch hands the environment to the tasks
    command = [
        sys.executable, "-m", "cgfw", "ablate", str(recipe), "--seeds", "0,1",
        "--launcher", "slurm", "--launcher-opt", "partition=cgfw,wait=true",
        "--set", f"train.max_iters={ITERS}", "--set", "train.checkpoint_every=10",
        "--set", "train.image_every=1000", "--set", "train.log_every=10",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        runs = tmp_path / "runs"
        _wait("the array submitted", lambda: any(runs.glob("*/slurm/jobs.json")), proc, 60)
        (jobs_file,) = runs.glob("*/slurm/jobs.json")
        parent = jobs_file.parent.parent
        jobs = json.loads(jobs_file.read_text())
        assert sorted(jobs) == ["base-seed0", "base-seed1"]
        assert len({job.split("_")[0] for job in jobs.values()}) == 1  # one array
        victim = parent / "base-seed0"
        latest = victim / "checkpoints" / "latest.pt"
        _wait("a first checkpoint", latest.is_file, proc, 120)
        # Preemption as submitit's Job._interrupt() does it: SIGTERM to the task's processes,
        # then submitit's signal (USR2), on which it checkpoints and requeues the task.
        for sig in ("TERM", "USR2"):
            subprocess.run(["scancel", jobs["base-seed0"], f"--signal={sig}"], check=True)
        output, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    for name in jobs:  # every run finished, the preempted one by resuming
        run_dir = parent / name
        assert (run_dir / "final_losses.json").is_file(), (run_dir / "log.txt").read_text()
        assert checkpoint.load(run_dir / "checkpoints" / "latest.pt").iteration == ITERS
    victim_log = (victim / "log.txt").read_text()
    assert "stopped by signal" in victim_log  # checkpointed on the way out
    assert "resumed from" in victim_log
    assert (victim / "resume.json").is_file()  # the resume is recorded
    assert not (parent / "base-seed1" / "resume.json").exists()
    scontrol = subprocess.run(
        ["scontrol", "show", "job", jobs["base-seed0"]], capture_output=True, text=True
    ).stdout
    assert "Restarts=1" in scontrol
    compare = subprocess.run(
        [sys.executable, "-m", "cgfw", "compare", str(parent)], capture_output=True, text=True
    )
    assert compare.returncode == 0, compare.stderr
    assert "base" in compare.stdout


def test_a_job_array_slurm_refuses_is_one_error_and_leaves_no_folder(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY.format(out=tmp_path / "runs"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "cgfw", "ablate", str(recipe), "--seeds", "0,1",
         "--launcher", "slurm", "--launcher-opt", "partition=no_such_partition"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Slurm did not take the job array" in done.stderr
    assert "partition" in done.stderr and "Traceback" not in done.stderr
    assert not list((tmp_path / "runs").glob("*"))  # no half-made ablation folder
