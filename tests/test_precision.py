"""The engine owns the fp16 loss scaler: a model written without any scaler call (as
docs/plugins.md's) has it updated once per iteration, and an old model's own calls do no harm."""

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel
from rich.console import Console
from torch import Tensor, nn

from cgfw.plugin.loader import Loaded
from cgfw.plugin.registry import NoOptions
from cgfw.recipe import load
from cgfw.training.loop import train_iteration
from cgfw.training.model import Build, Model, Runtime, Speed
from cgfw.training.progress import LossLog
from tests.conftest import state_equal

CPU = torch.device("cpu")
FP16 = Speed("fp16", False, "off")


class Minimal(Model):
    """A one-network model that calls rt.autocast() and rt.optimizer_step() only."""

    def __init__(self, options: BaseModel, build: Build) -> None:
        super().__init__(options, build)
        self.g = build.adopt(nn.Conv2d(3, 3, 1))
        self.networks = {"g": self.g}
        self.optimizers = {"g": build.optimizer(self.g)}

    def step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        with self.rt.autocast():
            loss = (self.g(real_a).float() - real_b).abs().mean()
        self.optimizers["g"].zero_grad(set_to_none=True)
        self.rt.optimizer_step(loss, self.optimizers["g"])
        return {"l1": loss.detach()}


class Old(Minimal):
    """A third-party model from before the engine owned the scaler: it begins the iteration,
    scales, steps and updates the scaler itself."""

    def step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        self.rt.begin_iteration()
        with self.rt.autocast():
            loss = (self.g(real_a).float() - real_b).abs().mean()
        opt = self.optimizers["g"]
        opt.zero_grad(set_to_none=True)
        self.rt.scaler.scale(loss).backward()
        self.rt.scaler.step(opt)
        self.rt.scaler.update()
        return {"l1": loss.detach()}


def build(kind: type[Minimal], loaded: Loaded, recipe: Path) -> Minimal:
    torch.manual_seed(0)
    return kind(NoOptions(), Build(load(str(recipe), loaded.registry), Runtime(CPU, FP16)))


def train(m: Model, iterations: int, run_dir: Path) -> None:
    log = LossLog(None, Console(quiet=True), iterations, 0)
    g = torch.Generator().manual_seed(0)
    for i in range(iterations):
        real_a, real_b = (torch.rand(2, 3, 8, 8, generator=g) * 2 - 1 for _ in range(2))
        train_iteration(m.step, m, real_a, real_b, log, i + 1, run_dir)


def test_the_engine_updates_the_fp16_scaler_of_a_model_that_never_touches_it(
    loaded: Loaded, tiny_recipe: Path, tmp_path: Path
) -> None:
    m = build(Minimal, loaded, tiny_recipe)
    scaler = m.rt.precision.scaler
    assert scaler.is_enabled()
    # Growth every 2 clean iterations, so the scale itself shows the updates too.
    m.rt.precision.load_state_dict(scaler.state_dict() | {"growth_interval": 2})
    train(m, 5, tmp_path)  # a second step without an update in between would raise
    state: dict[str, Any] = m.state_dict()["scaler"]  # the checkpoint's key, as before
    assert state["_growth_tracker"] == 1 and state["scale"] == 65536.0 * 2**2


def test_an_old_models_own_scaler_calls_are_harmless(
    loaded: Loaded, tiny_recipe: Path, tmp_path: Path
) -> None:
    new, old = build(Minimal, loaded, tiny_recipe), build(Old, loaded, tiny_recipe)
    for m in (new, old):
        m.rt.precision.load_state_dict(m.rt.precision.state_dict() | {"growth_interval": 2})
    train(new, 5, tmp_path)
    with pytest.warns(DeprecationWarning) as warned:
        train(old, 5, tmp_path)
    said = sorted({str(w.message).split(" is ")[0] for w in warned})
    assert said == ["rt.begin_iteration()", "rt.scaler.update()"]
    assert old.state_dict()["scaler"] == new.state_dict()["scaler"]  # updated once, not twice
    assert state_equal(old.g.state_dict(), new.g.state_dict())
