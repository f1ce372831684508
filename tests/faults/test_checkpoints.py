"""Damaged checkpoints: a flipped bit or a zeroed block in a weight is caught by the checksum;
every command that reads a run falls back from a damaged latest.pt to an intact previous.pt
with one warning naming both; structures that are not a checkpoint's are one clear error; a
resume that is refused leaves no record behind."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from cgfw.store import checkpoint
from cgfw.store.checkpoint import Checkpoint, DamagedCheckpoint

PATTERN = 1.2345


def saved(tmp_path: Path) -> Path:
    """A checkpoint of one made-up network whose weights are a pattern easy to find on disk."""
    networks = {"g_ab": {"weight": torch.full((256,), PATTERN)}}
    return checkpoint.save(tmp_path, Checkpoint(3, recipe={}, model={"networks": networks}))


def offset_of_weights(path: Path) -> int:
    at = path.read_bytes().find(torch.tensor([PATTERN] * 4).numpy().tobytes())
    assert at > 0
    return at


def flip_bit(data: bytearray, at: int) -> None:
    data[at + 100] ^= 0x10


def zero_block(data: bytearray, at: int) -> None:
    data[at + 64 : at + 576] = bytes(512)


@pytest.mark.parametrize("damage", [flip_bit, zero_block], ids=["bit-flip", "zeroed-block"])
def test_a_damaged_weight_is_caught_by_the_checksum(
    tmp_path: Path, damage: Callable[[bytearray, int], None]
) -> None:
    path = saved(tmp_path)
    assert checkpoint.load(path).iteration == 3  # intact, it loads
    data = bytearray(path.read_bytes())
    damage(data, offset_of_weights(path))
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedCheckpoint, match=r"latest\.pt: damaged checkpoint: its contents"):
        checkpoint.load(path)


def test_a_checkpoint_without_its_checksum_is_damaged(tmp_path: Path) -> None:
    state = checkpoint.load(saved(tmp_path)).to_dict() | {"format": checkpoint.FORMAT}
    torch.save(state, tmp_path / "stripped.pt")
    with pytest.raises(DamagedCheckpoint, match=r"stripped\.pt: damaged checkpoint: its checksum"):
        checkpoint.load(tmp_path / "stripped.pt")


def with_checksum(state: dict[str, Any], path: Path) -> Path:
    """`state` written with a valid checksum: only its structure is wrong."""
    torch.save(state | {"checksum": checkpoint.checksum(state)}, path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": []}, "'model' should be the model's state"),
        ({"iteration": "x"}, "'iteration' should be an iteration number"),
        ({"iteration": True}, "'iteration' should be an iteration number"),
        ({"iteration": -4}, "iteration -4 < 0"),
        ({"recipe": 5}, "'recipe' should be the resolved recipe"),
        ({"model": {"networks": {}}}, "the model holds no networks"),
        ({"model": {"networks": {"g_ab": [1, 2]}}}, "network 'g_ab' is not a table of tensors"),
        ({"model": {"networks": {"g_ab": {"w": 1.0}}}}, "network 'g_ab' is not a table of"),
        ({"rng": "x"}, "'rng' is not a table of tensors"),
        ({"epoch": "1"}, "'epoch' should be an epoch number"),
        ({"ema": []}, "'ema' should be the moving averages"),
        ({"log": 3}, "'log' should be the open log window"),
    ],
)
def test_a_checkpoint_of_the_wrong_structure_is_one_error_naming_the_key(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    state = checkpoint.load(saved(tmp_path)).to_dict() | {"format": checkpoint.FORMAT} | change
    path = with_checksum(state, tmp_path / "odd.pt")
    with pytest.raises(DamagedCheckpoint, match=rf"odd\.pt: damaged checkpoint: {message}"):
        checkpoint.load(path)


def test_a_format_1_checkpoint_loads_through_the_upgrade(tmp_path: Path) -> None:
    """Runs saved before checksums (format 1): nothing to check, an empty log window."""
    state = checkpoint.load(saved(tmp_path)).to_dict()
    del state["log"]
    torch.save(state | {"format": 1}, tmp_path / "old.pt")
    old = checkpoint.load(tmp_path / "old.pt")
    assert (old.iteration, old.log) == (3, {})


@pytest.fixture
def damaged_run(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of a finished tiny run (latest at 4, previous at 2) with latest.pt's weights
    damaged."""
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    latest = run / "checkpoints" / "latest.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0x01
    latest.write_bytes(bytes(data))
    with pytest.raises(DamagedCheckpoint):
        checkpoint.load(latest)
    return run


def fell_back(output: str, run: Path) -> bool:
    line = next((x for x in output.splitlines() if "is damaged" in x), "")
    latest, previous = run / "checkpoints" / "latest.pt", run / "checkpoints" / "previous.pt"
    return f"{latest} is damaged" in line and f"using {previous} (iteration 2)" in line


def test_commands_fall_back_from_a_damaged_latest_to_previous_with_one_warning(
    damaged_run: Path, tmp_path: Path, cli: Any
) -> None:
    Image.new("RGB", (32, 32), (200, 40, 90)).save(tmp_path / "in.png")
    translated = cli("translate", damaged_run, tmp_path / "in.png", tmp_path / "out.png")
    assert translated.exit_code == 0, translated.output
    assert fell_back(translated.output, damaged_run)
    assert translated.output.count("is damaged") == 1
    resumed = cli("run", "--resume", damaged_run, "--set", "train.max_iters=6")
    assert resumed.exit_code == 0, resumed.output
    assert fell_back(resumed.output, damaged_run)
    assert "resumed from" in resumed.output and "at iteration 2" in resumed.output
    assert checkpoint.load(damaged_run / "checkpoints" / "latest.pt").iteration == 6


def test_a_run_whose_checkpoints_are_both_damaged_says_so(damaged_run: Path, cli: Any) -> None:
    previous = damaged_run / "checkpoints" / "previous.pt"
    previous.write_bytes(previous.read_bytes()[:100])
    result = cli("run", "--resume", damaged_run, "--set", "train.max_iters=6")
    assert result.exit_code == 2
    assert "both checkpoints of" in result.output and "Traceback" not in result.output


def test_a_refused_resume_leaves_no_record_and_the_recipe_as_it_was(
    trained_run: Path, tmp_path: Path, cli: Any
) -> None:
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    recipe = (run / "recipe.toml").read_text()
    for refused in (
        ("--set", "generator.ngf=16"),  # a changed architecture
        (),  # already at its last iteration
    ):
        result = cli("run", "--resume", run, *refused)
        assert result.exit_code == 2, result.output
        assert not list(run.glob("resume*.json"))
        assert (run / "recipe.toml").read_text() == recipe
