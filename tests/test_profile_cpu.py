"""benchmarks/profile_cpu.py (issue 23's profile) on a tiny run: every phase of the loop is
timed where it is called, and the step's operators fall into their categories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_profile_times_each_phase_and_sorts_the_operators(tmp_path: Path) -> None:
    iters = 12
    script = Path(__file__).parents[1] / "benchmarks" / "profile_cpu.py"
    sets = ["generator.ngf=8", "discriminator.ndf=8", "train.log_every=4", "train.image_every=6"]
    args = [sys.executable, str(script), "--iters", str(iters), "--profile-iters", "3"]
    for s in sets:
        args += ["--set", s]
    done = subprocess.run([*args, "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((tmp_path / "profile.json").read_text())
    calls = {row[0]: row[2] for row in found["run"]}
    # The first batch counts as start-up; one more is fetched when the loop ends.
    assert calls["step"] == str(iters) and calls["data (loader)"] == str(iters)
    assert calls["log lines"] == str(iters // 4) and calls["sample grids"] == "2"
    shares = {row[0]: float(row[2]) for row in found["step"]}
    assert shares["convolution"] > 0 and shares["optimizer (Adam)"] > 0
    assert (tmp_path / "operators.txt").exists()
