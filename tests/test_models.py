"""A training objective, a command and components from a package outside the repo, with the
paper plugin disabled: the engine names no paper component and needs none."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cgfw.plugin.loader import load_plugins

ROOT = Path(__file__).resolve().parents[1]
PAPER = [
    "paper-models", "paper-commands", "paper-generators", "paper-discriminators",
    "paper-losses", "paper-buffers", "paper-schedules", "paper-datasets", "paper-ablations",
    "paper-recipes", "paper-metrics",
]  # fmt: skip

# A whole stranger's package: a one-sided "denoiser" model (a generator trained to undo noise,
# L2), its generator, a dataset of random colours, a schedule and a command. Under 60 lines.
OUTSIDE = """
    from typing import ClassVar

    import click
    import torch
    from pydantic import BaseModel, ConfigDict, Field
    from torch import nn

    import cgfw
    from cgfw import Model, Slot


    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        noise: float = Field(0.1, ge=0)


    class Denoiser(Model):
        slots: ClassVar[dict[str, Slot]] = {
            "data": Slot("dataset", "colours"),
            "schedule": Slot("schedule", "flat"),
            "generator": Slot("generator", "two_convs"),
        }
        directions: ClassVar[dict[str, tuple[str, str]]] = {"a2b": ("g", "generator")}

        def __init__(self, options, build):
            super().__init__(options, build)
            self.g = build.network("generator")
            self.networks = {"g": self.g}
            self.optimizers = {"g": build.optimizer(self.g)}

        def step(self, real_a, real_b):
            noisy = real_a + self.options.noise * torch.randn_like(real_a)
            with self.rt.autocast():
                loss = (self.g(noisy) - real_a).pow(2).mean()
            self.optimizers["g"].zero_grad(set_to_none=True)
            self.rt.optimizer_step(loss, self.optimizers["g"])
            return {"l2": loss.detach()}


    class Colours(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, key):
            index = key[0] if isinstance(key, tuple) else key
            g = torch.Generator().manual_seed(index)
            return {s: torch.rand(3, 16, 16, generator=g) * 2 - 1 for s in "ab"}


    @cgfw.hookimpl
    def register_models(register):
        register("denoiser", Denoiser, Options, "undo Gaussian noise")


    @cgfw.hookimpl
    def register_generators(register):
        register("two_convs", lambda _o: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                 nn.Conv2d(4, 3, 3, padding=1), nn.Tanh()))


    @cgfw.hookimpl
    def register_datasets(register):
        register("colours", lambda _o, split: Colours())


    @cgfw.hookimpl
    def register_schedules(register):
        register("flat", lambda _o: lambda epoch: 1.0)


    @cgfw.hookimpl
    def register_commands(register):
        @click.command("hello", help="Say which models are installed.")
        def hello():
            from cgfw.plugin.loader import load_plugins
            click.echo("models: " + ", ".join(load_plugins().registry.names("model")))

        register("hello", lambda _o: hello, None, "greets")
"""

RECIPE = """
[run]
name = "outside"
output_dir = "{out}"

[model]
name = "denoiser"
noise = 0.2

[train]
max_iters = 3
batch_size = 2
device = "cpu"
checkpoint_every = 3
samples = 2
"""


def cgfw(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{ROOT}")
    env["CGFW_DISABLE_PLUGINS"] = ",".join(PAPER)
    return subprocess.run(
        [sys.executable, "-m", "cgfw", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_a_package_adds_a_model_a_command_and_components_with_the_paper_plugin_off(
    fake_distribution: Any, tmp_path: Path
) -> None:
    site = fake_distribution("cgfw-denoiser", OUTSIDE)
    recipe = tmp_path / "denoise.toml"
    recipe.write_text(RECIPE.format(out=tmp_path / "runs"), encoding="utf-8")

    trained = cgfw(site, "run", str(recipe))
    assert trained.returncode == 0, trained.stdout + trained.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "final_losses.json").read_text()).keys() == {"l2"}
    saved = (run_dir / "recipe.toml").read_text()
    # Every slot named by the model's defaults, none by the engine.
    for section in ('name = "colours"', 'name = "flat"', 'name = "two_convs"'):
        assert section in saved
    assert (run_dir / "checkpoints" / "latest.pt").is_file()

    said = cgfw(site, "hello")
    assert said.returncode == 0, said.stderr
    assert said.stdout.strip() == "models: denoiser"  # the CycleGAN is off: only the stranger's
    assert "hello" in cgfw(site, "--help").stdout

    # A recipe without [model] names the missing default, with the fix.
    recipe.write_text(RECIPE.format(out=tmp_path / "runs").replace('name = "denoiser"', ""))
    refused = cgfw(site, "run", str(recipe))
    assert refused.returncode == 2
    assert "no installed plugin supplies a default model" in refused.stderr
    assert "(known: denoiser)" in refused.stderr


def test_importing_the_engine_and_the_command_line_loads_no_paper_module() -> None:
    code = (
        "import sys, cgfw, cgfw.cli, cgfw.training.loop, cgfw.cli.bench, cgfw.cli.ablate;"
        "print(sorted(m for m in sys.modules if m.startswith('cgfw_paper')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code, docstrings left out (their examples may name
    anything)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_the_engine_names_no_component_of_the_bundled_plugins() -> None:
    """No string in the engine's code (cgfw/, the command line apart) is the name of a
    component the bundled plugins register (the paper's, the stabilisers, the trackers and
    the launchers), so no default hides there."""
    registry = load_plugins().registry
    paper = {
        name
        for kind, table in registry.components.items()
        for name, c in table.items()
        if c.plugin.startswith(("paper-", "field-", "track-", "launch-"))
        and kind not in ("recipe", "command", "ablation")
    }
    # "l1": the key of the engine's own cycle error in metrics.json; "step": Adam's state key;
    # "none": a word in messages.
    allowed = {"l1", "step", "none"}
    found = [
        f"{path.name}: {text!r}"
        for path in sorted((ROOT / "cgfw").glob("*.py"))
        for text in _code_strings(path)
        if text in paper - allowed
    ]
    assert not found, found


def test_a_model_sees_its_recipe_read_only(tmp_path: Path) -> None:
    """What a model is given cannot change what the run records: its attributes cannot be set,
    its mappings cannot be written, and its option objects are copies."""
    from cgfw.recipe import load
    from cgfw.training.model import Build, Runtime

    resolved = load("quickstart", load_plugins().registry)
    view = Build(resolved, Runtime()).recipe
    with pytest.raises(AttributeError, match="read-only"):
        view.source = "elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.options["generator"] = resolved.options["data"]  # type: ignore[index]
    view.options["generator"].n_blocks = 99  # type: ignore[attr-defined]
    view.recipe.train.batch_size = 99
    assert resolved.options["generator"].n_blocks != 99  # type: ignore[attr-defined]
    assert resolved.recipe.train.batch_size != 99
    assert view.components["generator"].name == resolved.components["generator"].name
