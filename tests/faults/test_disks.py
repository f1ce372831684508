"""Full and read-only disks, for real: a small tmpfs filled to leave a chosen number of bytes,
then remounted read-only. Each write that fails (the lock, run.json, a sample grid, the zip of
a checkpoint, a later checkpoint) is one error naming the file and the space left, with no
temporary file left behind, no empty run directory, and every checkpoint already saved intact.
Skipped where this process may not mount (not root, or no tmpfs)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cgfw.store import checkpoint
from tests.conftest import TINY, run_dirs
from tests.faults.campaign import tmpfs


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "16m") as mount:
        if mount is None:
            pytest.skip("cannot mount a tmpfs here (not root?)")
        yield mount


def fill(disk: Path, leave: int) -> None:
    """Take all but `leave` bytes of the disk's free space."""
    stat = os.statvfs(disk)
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "leave_kib",
    [0, 8, 40, 150, 1500],
    # what then fails: the lock file, run.json, the first sample grid, the first checkpoint's
    # zip, a later checkpoint (its first one already on disk)
)
def test_a_full_disk_is_one_error_naming_the_file_and_the_space_left(
    disk: Path, tmp_path: Path, cli: Any, leave_kib: int
) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY.format(out=disk / "runs"), encoding="utf-8")
    (disk / "runs").mkdir()
    fill(disk, leave_kib * 1024)
    result = cli("run", recipe, "--set", "train.max_iters=40")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert re.search(rf"cannot write {disk}/runs/\S+: .* \([0-9.]+ \w+ free there\)", errors[0])
    assert not leftovers(disk)
    for run_dir in run_dirs(disk / "runs"):  # only runs with a checkpoint stay, and it loads
        assert checkpoint.load(run_dir / "checkpoints" / "latest.pt").iteration >= 2


def test_a_read_only_disk_refuses_the_resume_and_keeps_the_run(
    disk: Path, tmp_path: Path, cli: Any
) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY.format(out=disk / "runs"), encoding="utf-8")
    assert cli("run", recipe).exit_code == 0
    (run_dir,) = run_dirs(disk / "runs")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    result = cli("run", "--resume", run_dir, "--set", "train.max_iters=8")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert re.search(rf"error: cannot write {run_dir}/\S+: Read-only file system", result.output)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
