"""`cgfw ablate --launcher NAME --launcher-opt ...`: options checked, and a wrong launcher, option
or missing package named before any run directory is made."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cgfw.errors import CgfwError
from cgfw.tools.ablate import parse_launcher_opts


def test_launcher_options_read_as_toml_values() -> None:
    options = parse_launcher_opts(("partition=gpu,gpus_per_node=1", "timeout_min=720,wait=true"))
    assert options == {"partition": "gpu", "gpus_per_node": 1, "timeout_min": 720, "wait": True}
    # Lists and tables keep their commas: only a comma before KEY= starts an option.
    listed = parse_launcher_opts(('setup=["module load cuda", "source env"],qos=high',))
    assert listed == {"setup": ["module load cuda", "source env"], "qos": "high"}
    with pytest.raises(CgfwError, match="--launcher-opt 'partition'"):
        parse_launcher_opts(("partition",))


def _ablate(cli: Callable[..., Any], recipe: Path, *more: str) -> Any:
    return cli("ablate", recipe, "--seeds", "0,1", "--set", "train.max_iters=2", *more)


def test_wrong_launcher_or_option_is_one_error_and_makes_no_run(
    tiny_recipe: Path, cli: Callable[..., Any]
) -> None:
    runs = tiny_recipe.parent / "runs"
    result = _ablate(cli, tiny_recipe, "--launcher", "slurmm")
    assert result.exit_code == 2
    assert "unknown launcher 'slurmm'" in result.output and "slurm" in result.output
    result = _ablate(cli, tiny_recipe, "--launcher", "slurm", "--launcher-opt", "partiton=gpu")
    assert result.exit_code == 2
    assert "--launcher-opt.partiton: unknown option for launcher 'slurm'" in result.output
    assert "partition" in result.output  # did you mean
    assert "Traceback" not in result.output
    assert not runs.exists()


def test_slurm_without_submitit_says_how_to_install_it(
    tiny_recipe: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "submitit" else real(name, *a)
    )
    result = _ablate(cli, tiny_recipe, "--launcher", "slurm")
    assert result.exit_code == 2
    assert 'pip install "cgfw[slurm]"' in result.output
    assert not (tiny_recipe.parent / "runs").exists()


def test_a_task_starts_its_run_then_resumes_it_and_goes_data_parallel_under_torchrun(
    tmp_path: Path,
) -> None:
    from cgfw.session.launching import run_command

    run_dir = tmp_path / "base-seed0"
    (run_dir / "checkpoints").mkdir(parents=True)
    first = run_command(run_dir)
    assert first[-4:] == ["run", str(run_dir / "variant.toml"), "--into", str(run_dir)]
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"")  # a requeued task finds it
    assert run_command(run_dir, "cuda")[-5:] == [
        "run",
        "--resume",
        str(run_dir),
        "--device",
        "cuda",
    ]
    parallel = run_command(run_dir, None, processes=4)
    assert "--nproc-per-node=4" in parallel and parallel[-5:-3] == ["-m", "cgfw"]
