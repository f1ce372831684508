"""[alarms]: runs made to fail the three ways the authors' tracker knows best each raise their
alarm, on the console and in TensorBoard; a healthy run raises none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cgfw.recipe.schema import AlarmsSection
from cgfw.training.alarms import Alarms
from tests.conftest import run_dirs

# Generators that fail on purpose: the parameter only gives the optimizer something to hold.
BROKEN = """
    import cgfw
    import torch
    from torch import nn

    class Fixed(nn.Module):
        def __init__(self, sign):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))
            self.sign = sign

        def forward(self, x):
            return self.sign * x + 0 * self.w

    # A discriminator that grey cannot fool: 1 for an image with any brightness, 0 for one
    # that is exactly grey (the blank generator's fakes).
    class Oracle(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.tanh(1e4 * x.abs().mean((1, 2, 3), keepdim=True)) + 0 * self.w

    @cgfw.hookimpl
    def register_discriminators(register):
        register("oracle", lambda opts: Oracle(), None, "tells grey from anything else")

    @cgfw.hookimpl
    def register_generators(register):
        register("identity", lambda opts: Fixed(1.0), None, "returns its input")
        register("inverting", lambda opts: Fixed(-1.0), None, "returns its input negated")
        register("blank", lambda opts: Fixed(0.0), None, "returns grey")
"""
RUN = ["--set", "train.max_iters=12", "--set", "train.log_every=2", "--set", "train.image_every=4"]


@pytest.fixture
def broken(fake_distribution: Callable[[str, str], Path]) -> None:
    fake_distribution("broken-generators", BROKEN)


def _run(cli: Any, recipe: Path, *extra: str) -> tuple[str, Path]:
    result = cli("run", recipe, *RUN, *extra)
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(recipe.parent / "runs")
    return result.output, run_dir


def _tensorboard_texts(run_dir: Path) -> set[str]:
    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    events.Reload()
    return {tag for tag in events.Tags()["tensors"] if tag.startswith("alarms/")}


@pytest.mark.usefixtures("broken")
def test_a_generator_that_became_the_identity_raises_the_identity_alarm(
    cli: Any, tiny_recipe: Path
) -> None:
    output, run_dir = _run(cli, tiny_recipe, "--set", "generator={name='identity'}")
    assert "a2b: the translations differ from their inputs by 0" in output
    assert "alarms.identity_below" in output and "inverted" not in output
    assert output.count("generator has") == 2  # a2b and b2a, each once while it lasts
    assert "alarms/identity/text_summary" in _tensorboard_texts(run_dir)


@pytest.mark.usefixtures("broken")
def test_an_inverting_generator_raises_the_inversion_alarm(cli: Any, tiny_recipe: Path) -> None:
    output, run_dir = _run(cli, tiny_recipe, "--set", "generator={name='inverting'}")
    assert "follows the inputs' inverted (correlation -1.00" in output
    assert "alarms/inversion/text_summary" in _tensorboard_texts(run_dir)


@pytest.mark.usefixtures("broken")
def test_a_discriminator_that_wins_outright_raises_the_collapse_alarm(
    cli: Any, tiny_recipe: Path
) -> None:
    """Grey fakes judged by a discriminator that sees grey for what it is: its LSGAN loss is
    zero from the first iteration, so the alarm sounds once `windows` log windows have closed."""
    won = ("--set", "generator={name='blank'}", "--set", "discriminator={name='oracle'}")
    output, run_dir = _run(cli, tiny_recipe, *won)
    assert "discriminator loss d_b has stayed below alarms.d_loss_below" in output
    assert "warning at iteration 6: discriminator loss d_a" in output  # 3 windows of 2
    assert "alarms/collapse/text_summary" in _tensorboard_texts(run_dir)


def test_a_healthy_run_raises_no_alarm(cli: Any, tiny_recipe: Path) -> None:
    output, run_dir = _run(cli, tiny_recipe)
    assert "warning at iteration" not in output
    assert _tensorboard_texts(run_dir) == set()


def test_an_alarm_is_said_once_while_it_lasts_and_again_once_it_came_back() -> None:
    alarms = Alarms(AlarmsSection(windows=2), Console(quiet=True), None)
    for value in (0.0, 0.0, 0.0, 0.5, 0.0, 0.0):  # low, low (raised), low, clear, low, low
        alarms.after_log(0, {"d_a": value, "g_total": 0.0})
    assert alarms.said == ["collapse:d_a", "collapse:d_a"]
    off = Alarms(AlarmsSection(enabled=False), Console(quiet=True), None)
    for _ in range(5):
        off.after_log(0, {"d": 0.0})
    assert off.said == []
