"""Real SIGKILLs at named moments (tests/faults/killer.py), each resumed and compared with an
uninterrupted twin of the same seed: the same weights, the same final_losses.json and the same
logged losses, bit for bit, on a CPU. The intervals do not divide each other (checkpoint every
4, log every 3) and the epochs are 5 iterations long, so kills fall inside log windows and
resumes cross epoch boundaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cgfw.store import checkpoint
from tests.conftest import TINY, make_folder_dataset, run_dirs, state_equal

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 17
SETTINGS = [
    "--set", f"train.max_iters={TOTAL}",
    "--set", "train.checkpoint_every=4",
    "--set", "train.log_every=3",
    "--set", "train.image_every=1000",
]  # fmt: skip


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    """tiny.toml on 10 + 10 folder images: 5 iterations an epoch at batch 2."""
    root = tmp_path
    data = make_folder_dataset(root / "data", {"trainA": 10, "trainB": 10, "testA": 2, "testB": 2})
    path = root / "tiny.toml"
    text = TINY.format(out=root / "runs").replace(
        'name = "emoji"', f'name = "folder"\nroot = "{data}"'
    )
    path.write_text(text, encoding="utf-8")
    return path


def logged(run_dir: Path) -> dict[int, set[float]]:
    """Every value logged for loss/g_total, by step (a step logged before a kill and again
    after the resume appears twice, and must agree with itself)."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    values: dict[int, set[float]] = {}
    for e in events.Scalars("loss/g_total"):
        values.setdefault(e.step, set()).add(e.value)
    return values


@pytest.fixture
def twin(recipe: Path) -> Path:
    """The same run uninterrupted, in a child process too: every run compared here then has the
    same thread count (an in-process run would share this process's torch settings)."""
    out = recipe.parent / "twin"
    done = cgfw("run", str(recipe), *SETTINGS, "--set", f"run.output_dir={out}")
    assert done.returncode == 0, done.stderr
    (run_dir,) = run_dirs(out)
    return run_dir


def cgfw(*args: str, kill: str | None = None) -> subprocess.CompletedProcess[str]:
    """`cgfw ARGS` in a child process; with `kill`, SIGKILLed at that point (killer.py)."""
    module = ["tests.faults.killer", kill] if kill else ["cgfw"]
    return subprocess.run(
        [sys.executable, "-m", *module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip


def same_run(twin: Path, run_dir: Path) -> None:
    a = checkpoint.load(twin / "checkpoints" / "latest.pt")
    b = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert a.iteration == b.iteration == TOTAL
    for net in ("g_ab", "g_ba", "d_a", "d_b"):
        assert state_equal(a.model["networks"][net], b.model["networks"][net]), net
    final: list[Any] = [json.loads((d / "final_losses.json").read_text()) for d in (twin, run_dir)]
    assert final[0] == final[1]
    expected, got = logged(twin), logged(run_dir)
    assert got == expected, {s: (expected.get(s), got.get(s)) for s in got | expected}


@pytest.mark.slow
def test_a_run_killed_at_any_moment_resumes_to_its_uninterrupted_twin(
    recipe: Path, twin: Path, cli: Any
) -> None:
    """One run stopped four times, each resume stopped again: killed just after a checkpoint
    inside a log window (7, 8 | 9); resumed from 8, across the epoch boundary after iteration
    10, and stopped by SIGTERM at 14, inside a window (13, 14 | 15); resumed from 14 and killed
    inside the checkpoint write at 16 (half a temporary file on disk); resumed from 14 again and
    killed after the last checkpoint, before final_losses.json; the last resume finishes it."""
    out = recipe.parent / "killed"
    first = cgfw("run", str(recipe), *SETTINGS, "--set", f"run.output_dir={out}", kill="step:9")
    assert first.returncode == -9, first.stderr
    (run_dir,) = run_dirs(out)
    for point, resumed_from, code in (("term:14", 8, 143), ("save:16", 14, -9), ("final", 14, -9)):
        again = cgfw("run", "--resume", str(run_dir), kill=point)
        assert again.returncode == code, again.stderr
        assert (
            f"resumed from {run_dir / 'checkpoints' / 'latest.pt'} at iteration {resumed_from}"
            in (again.stderr)
        )
    assert not (run_dir / "final_losses.json").exists()
    last = cli("run", "--resume", run_dir)
    assert last.exit_code == 0, last.output
    assert f"the run reached iteration {TOTAL}; finishing it" in last.output
    same_run(twin, run_dir)
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


@pytest.mark.slow
def test_stop_signals_on_the_last_step_and_while_finishing_let_the_run_finish(
    recipe: Path,
) -> None:
    """SIGTERM in the last step, SIGUSR1 while final_losses.json is written (a scheduler's time
    limit, just too late): the run completes, says so, and exits 0."""
    out = recipe.parent / "stopped"
    done = cgfw("run", str(recipe), *SETTINGS, "--set", f"run.output_dir={out}", kill="stop:17")
    assert done.returncode == 0, done.stderr
    assert "signal 15 came on the last step: the run is complete" in done.stderr
    (run_dir,) = run_dirs(out)
    assert json.loads((run_dir / "final_losses.json").read_text())["g_total"] > 0
