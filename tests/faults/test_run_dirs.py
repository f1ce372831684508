"""A run directory deleted while training stops the run with one error (and is not made again
by the next checkpoint); a run that fails before its first checkpoint, for any reason, leaves
no empty directory behind."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from cgfw.training import loop
from tests.conftest import run_dirs


def test_a_run_directory_deleted_while_training_stops_the_run(
    tiny_recipe: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = loop.train_iteration

    def deleting(*args: Any) -> None:
        if args[5] == 3:  # after the checkpoint at 2
            shutil.rmtree(args[6])
        step(*args)

    monkeypatch.setattr(loop, "train_iteration", deleting)
    result = cli("run", tiny_recipe, "--set", "train.max_iters=8", "--set", "train.log_every=4")
    assert result.exit_code == 2, result.output
    assert "is gone: deleted while training? Stopped" in result.output
    assert "done" not in result.output
    assert run_dirs(tiny_recipe.parent / "runs") == []  # not made again


@pytest.mark.parametrize("failure", [RuntimeError("a bug in a plugin"), KeyboardInterrupt()])
def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_directory(
    tiny_recipe: Path, cli: Any, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    def failing(*args: Any) -> None:
        raise failure

    monkeypatch.setattr(loop, "train_iteration", failing)
    if isinstance(failure, KeyboardInterrupt):
        assert cli("run", tiny_recipe).exit_code == 1  # click's "Aborted!"
    else:
        with pytest.raises(RuntimeError, match="a bug in a plugin"):
            cli("run", tiny_recipe)
    assert run_dirs(tiny_recipe.parent / "runs") == []
