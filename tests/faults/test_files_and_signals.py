"""Stop signals, corrupt files, full disks, runs in use: nothing already saved is damaged
(the kills at named moments are test_kills.py)."""

import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cgfw.errors import CgfwError
from cgfw.store import checkpoint
from cgfw.store import provenance as runs
from tests.conftest import run_dirs

NAN_LOSS = """
    import cgfw, torch
    import torch.nn.functional as F
    from pydantic import BaseModel, ConfigDict

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        after: int = 24

    class NanAfter:
        def __init__(self, opts):
            self.opts, self.calls = opts, 0

        def __call__(self, scores, real, for_discriminator=False):
            self.calls += 1
            loss = F.mse_loss(scores, torch.full_like(scores, float(real)))
            return loss * float("nan") if self.calls > self.opts.after else loss

    @cgfw.hookimpl
    def register_gan_losses(register):
        register("nan_after", NanAfter, Options, "LSGAN that turns NaN after some calls")
"""

SHRINKING_GENERATOR = """
    import cgfw
    from torch import nn

    @cgfw.hookimpl
    def register_generators(register):
        register("shrink", lambda opts: nn.Conv2d(3, 3, 3), None, "loses a pixel at each border")
"""


def start(recipe: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "cgfw", "run", str(recipe), *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def wait_for_checkpoint(runs_dir: Path, at_least: int, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for run_dir in run_dirs(runs_dir) if runs_dir.exists() else []:
            latest = run_dir / "checkpoints" / "latest.pt"
            if latest.exists():
                try:
                    if checkpoint.load(latest).iteration >= at_least:
                        return run_dir
                except CgfwError:  # caught mid-rename; try again
                    pass
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 138), (signal.SIGUSR2, 140)],
)
def test_stop_signals_finish_the_step_checkpoint_and_say_how_to_resume(
    tiny_recipe: Path, sig: int, code: int
) -> None:
    runs_dir = tiny_recipe.parent / "runs"
    proc = start(
        tiny_recipe, "--set", "train.max_iters=100000", "--set", "train.checkpoint_every=5"
    )
    run_dir = wait_for_checkpoint(runs_dir, 5, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"cgfw run --resume {run_dir}" in err
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert state.iteration >= 5


def test_nonfinite_loss_stops_naming_term_and_iteration_and_keeps_the_checkpoint(
    tiny_recipe: Path,
    cli,
    fake_distribution,  # type: ignore[no-untyped-def]
) -> None:
    fake_distribution("cgfw-nan", NAN_LOSS)
    result = cli(
        "run",
        tiny_recipe,
        "--set",
        'losses.gan={name="nan_after", after=24}',
        "--set",
        "train.max_iters=10",
    )
    assert result.exit_code == 3
    assert "non-finite loss at iteration 5: g_ab_gan = nan" in result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert state.iteration == 4
    assert all(torch.isfinite(w).all() for w in state.model["networks"]["g_ab"].values())


def test_full_disk_leaves_the_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint.save(tmp_path, tiny_checkpoint(1))
    before = (tmp_path / "latest.pt").read_bytes()

    def full(obj: object, f: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(
        CgfwError,
        match=r"latest.pt: No space left on device \([0-9.]+ GiB free there\); the previous ch",
    ):
        checkpoint.save(tmp_path, tiny_checkpoint(2))
    assert (tmp_path / "latest.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]


def test_unwritable_output_dir_is_one_clear_error(tiny_recipe: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = cli("run", tiny_recipe, "--set", f"run.output_dir={blocker}/runs")
    assert result.exit_code == 2 and "run.output_dir: cannot create" in result.output


def test_a_run_directory_in_use_is_refused(tiny_recipe: Path, cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("run", tiny_recipe, "--set", "train.max_iters=2").exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    before = (run_dir / "checkpoints" / "latest.pt").read_bytes()
    with runs.locked(run_dir):
        result = cli("run", "--resume", run_dir, "--set", "train.max_iters=4")
    assert result.exit_code == 2 and f"run directory {run_dir} is in use" in result.output
    assert (run_dir / "checkpoints" / "latest.pt").read_bytes() == before


def test_resume_refuses_a_changed_architecture_and_shows_the_diff(tiny_recipe: Path, cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("run", tiny_recipe, "--set", "train.max_iters=2").exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    before = (run_dir / "checkpoints" / "latest.pt").read_bytes()
    result = cli(
        "run", "--resume", run_dir, "--set", "generator.n_blocks=3", "--set", "data.crop_size=24"
    )
    assert result.exit_code == 2
    assert (
        "generator.n_blocks: 2 -> 3" in result.output
        and "data.crop_size: 32 -> 24" in result.output
    )
    forced = cli("run", "--resume", run_dir, "--set", "generator.n_blocks=3", "--allow-changes")
    assert forced.exit_code == 2 and "does not fit this recipe's networks" in forced.output
    assert (run_dir / "checkpoints" / "latest.pt").read_bytes() == before
    longer = cli("run", "--resume", run_dir, "--set", "train.max_iters=3")
    assert longer.exit_code == 0 and "train.max_iters: 4 -> 3" not in longer.output


def test_broken_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, tiny_checkpoint(1, torch.ones(1000)))
    data = (tmp_path / "latest.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CgfwError, match=r"truncated\.pt: not a readable cgfw checkpoint"):
        checkpoint.load(tmp_path / "truncated.pt")
    torch.save({"format": checkpoint.FORMAT + 1}, tmp_path / "newer.pt")
    with pytest.raises(CgfwError, match=r"newer than this cgfw reads.*upgrade cgfw"):
        checkpoint.load(tmp_path / "newer.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CgfwError, match="not a cgfw checkpoint"):
        checkpoint.load(tmp_path / "foreign.pt")
    for name, junk in (("empty.pt", b""), ("text.pt", b"hello\n"), ("noise.pt", bytes(range(256)))):
        (tmp_path / name).write_bytes(junk)
        with pytest.raises(CgfwError, match=rf"{name}: not a readable cgfw checkpoint"):
            checkpoint.load(tmp_path / name)


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: an illegal memory access was encountered"),
    ],
    ids=["memory", "cuda-oom", "cuda-error"],
)
def test_memory_and_device_errors_while_loading_a_checkpoint_are_not_blamed_on_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """They surface as they are, with their traceback, instead of "not a readable checkpoint"."""
    checkpoint.save(tmp_path, tiny_checkpoint(1, torch.ones(10)))

    def fail(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(type(error)) as raised:
        checkpoint.load(tmp_path / "latest.pt", map_location="cuda")
    assert raised.value is error


def test_a_checkpoint_loaded_onto_a_missing_device_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real device error from torch.load itself: the file is fine, CUDA is not there."""
    checkpoint.save(tmp_path, tiny_checkpoint(1, torch.ones(10)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="deserialize object on a CUDA device") as raised:
        checkpoint.load(tmp_path / "latest.pt", map_location="cuda")
    assert not isinstance(raised.value, CgfwError)
    assert checkpoint.load(tmp_path / "latest.pt").iteration == 1


class Payload:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_is_refused_and_its_code_never_runs(
    tmp_path: Path, tiny_recipe: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"format": 1, "iteration": 0, "x": Payload(marker)}, f)
    with pytest.raises(CgfwError, match="not a readable cgfw checkpoint"):
        checkpoint.load(evil)
    assert cli("run", tiny_recipe, "--set", "train.max_iters=2").exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    (run_dir / "checkpoints" / "latest.pt").write_bytes(evil.read_bytes())
    result = cli("run", "--resume", run_dir)
    assert result.exit_code == 2 and "not a readable cgfw checkpoint" in result.output
    assert not marker.exists()


def test_a_plugin_network_with_the_wrong_shape_is_named(
    tiny_recipe: Path, cli, fake_distribution
) -> None:  # type: ignore[no-untyped-def]
    fake_distribution("cgfw-shrink", SHRINKING_GENERATOR)
    result = cli("run", tiny_recipe, "--set", 'generator={name="shrink"}')
    assert result.exit_code == 2
    assert (
        "generator 'shrink' (plugin 'cgfw-shrink') returned shape (1, 3, 30, 30)" in result.output
    )


def tiny_checkpoint(iteration: int, weights: torch.Tensor | None = None) -> checkpoint.Checkpoint:
    """A checkpoint of one made-up network, for tests of the file handling alone."""
    networks = {"g_ab": {"weight": weights if weights is not None else torch.zeros(1)}}
    return checkpoint.Checkpoint(iteration=iteration, recipe={}, model={"networks": networks})
