"""What a new plugin author hit (issue 25): each test through the command line or the docs as
that author meets them, with third-party plugins installed as fake distributions."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cgfw.cli import console
from cgfw.cli import main as cgfw_group
from cgfw.plugin import hookspecs
from cgfw.plugin.loader import load_plugins
from tests.conftest import run_dirs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"

COMMAND = """
import click
import cgfw
from cgfw.errors import CgfwError


@click.command()
def hello() -> None:
    raise CgfwError("hello needs a greeting file; give one with --file")


@click.group()
def tools() -> None:
    pass


@tools.command()
def check() -> None:
    raise CgfwError("nothing to check here")


@cgfw.hookimpl
def register_commands(register: cgfw.Register) -> None:
    register("hello", lambda _options: hello, None, "says hello")
    register("tools", lambda _options: tools, None, "a group")
"""


@pytest.fixture
def fresh_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's plugin commands are looked up once per process: look again for this test."""
    monkeypatch.setattr(cgfw_group, "_found", None)


def test_a_plugin_commands_cgfw_error_is_one_line_and_exit_code_2(
    fake_distribution: Callable[[str, str], Path], fresh_commands: None, cli: Any
) -> None:
    fake_distribution("cgfw-hello", COMMAND)
    result = cli("hello")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: hello needs a greeting file; give one with --file"
    sub = cli("tools", "check")  # a group's subcommand too
    assert sub.exit_code == 2 and sub.output.strip() == "error: nothing to check here"


def _tracker_block() -> str:
    """The Python block of docs/plugins.md's "A tracker or a launcher" section."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## A tracker or a launcher", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def test_the_docs_tracker_runs_as_written(
    fake_distribution: Callable[[str, str], Path], tiny_recipe: Path, cli: Any
) -> None:
    fake_distribution("cgfw-printer", _tracker_block())
    result = cli("run", tiny_recipe, "--set", 'run.trackers=["printer"]')
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tiny_recipe.parent / "runs")
    printed = [line for line in result.output.splitlines() if line.startswith(run.name)]
    assert [line.split()[1] for line in printed] == ["2", "4"]  # log_every = 2, max_iters = 4
    assert "'loss/d_a':" in printed[0] and "'loss/g_total':" in printed[0]
    assert "'lr': 0.0002" in printed[0]


def test_the_hooks_table_lists_every_hook() -> None:
    text = DOCS.read_text(encoding="utf-8")
    table = text.split("## The hooks", 1)[1].split("\n## ", 1)[0]  # the section's tables
    listed = re.findall(r"^\| `(register_\w+)` \|", table, flags=re.M)
    functions = inspect.getmembers(hookspecs, inspect.isfunction)
    hooks = [name for name, _ in functions if name.startswith("register_")]
    assert sorted(listed) == sorted(hooks)


def test_tracked_run_and_the_scalar_names_are_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in ("`path`", "`name`", "`recipe`", "`saved`", "`loss/NAME`", "`lr`", "`final/NAME`"):
        assert name in text
    assert "`eval/DIRECTION/METRIC`" in text and "`eval_raw/...`" in text


def test_components_show_sections_required_options_and_default_factories(cli: Any) -> None:
    models = cli("components", "model")
    assert models.exit_code == 0, models.output
    assert "[data] -> dataset, [schedule] -> schedule, [generator] -> generator" in models.output
    augment = cli("components", "augment").output
    assert "PydanticUndefined" not in augment
    assert "policy=['color'," in augment  # DiffAugment's default_factory, as the list it makes
    assert "root=required" in cli("components", "dataset").output  # the folder dataset's


OPTIMIZER_MODEL = """
from typing import Any, ClassVar

import cgfw
from cgfw_paper.cyclegan import CycleGAN, CycleGANOptions


class FastCycleGAN(CycleGAN):
    default = False
    optimizer_defaults: ClassVar[dict[str, Any]] = {"lr": 1e-3, "betas": (0.5, 0.99)}


@cgfw.hookimpl
def register_models(register: cgfw.Register) -> None:
    register("fast_cyclegan", FastCycleGAN, CycleGANOptions, "a CycleGAN at lr 1e-3")
"""


def test_a_model_gives_optimizer_defaults_under_the_recipes_own(
    fake_distribution: Callable[[str, str], Path], tiny_recipe: Path, cli: Any
) -> None:
    fake_distribution("cgfw-fast", OPTIMIZER_MODEL)
    model = ("--set", 'model.name="fast_cyclegan"')
    shown = cli("recipe", "show", tiny_recipe, *model)
    assert shown.exit_code == 0, shown.output
    assert "[optimizer]\nlr = 0.001\nbetas = [\n    0.5,\n    0.99,\n]" in shown.output
    own = cli("recipe", "show", tiny_recipe, *model, "--set", "optimizer.lr=0.005").output
    assert "lr = 0.005\nbetas = [\n    0.5,\n    0.99,\n]" in own  # the recipe's lr wins
    result = cli("run", tiny_recipe, *model, "--set", "train.max_iters=2")
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tiny_recipe.parent / "runs")
    assert "lr = 0.001" in (run / "recipe.toml").read_text()


def test_dry_run_names_networks_by_their_component(cli: Any) -> None:
    result = cli("run", "paper_default", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "g_ab: generator 'resnet' (plugin paper-generators) 11,378,179 parameters" in (
        result.output
    )
    assert "d_b: discriminator 'patchgan' (plugin paper-discriminators) 2,764,737" in (
        result.output
    )
    assert "Sequential" not in result.output


def test_a_set_typo_is_the_overrides_error_not_the_files(tiny_recipe: Path, cli: Any) -> None:
    typo = cli("run", tiny_recipe, "--dry-run", "--set", "generater.n_blocks=6")
    assert typo.exit_code == 2
    assert typo.output.startswith("error: --set 'generater.n_blocks=6': unknown key 'generater'")
    assert str(tiny_recipe) not in typo.output
    bad = cli("run", tiny_recipe, "--dry-run", "--set", "train.device=cpu", "--set", "ngf=x")
    assert "error: --set 'ngf=x': unknown key 'ngf'" in bad.output
    value = cli("recipe", "show", tiny_recipe, "--set", "generator.n_blocks=six").output
    assert value.startswith("error: --set 'generator.n_blocks=six': generator.n_blocks: ")
    # An error of the file itself stays the file's, whatever the overrides.
    broken = tiny_recipe.parent / "broken.toml"
    broken.write_text(tiny_recipe.read_text().replace("ngf = 8", "ngf = 'eight'"))
    own = cli("recipe", "show", broken, "--set", "train.max_iters=2").output
    assert own.startswith(f"error: {broken}: generator.ngf: ")


def test_plugins_table_shows_every_provided_name_in_80_columns(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console.out, "width", 80)  # as in an 80-column terminal
    result = cli("plugins")
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    words = set(re.findall(r"[\w-]+", result.output))
    for plugin in load_plugins().plugins:
        for names in plugin.provides.values():
            assert set(names) <= words, (set(names) - words, result.output)


NARROW_RECIPE = """
[data]
name = "emoji"
load_size = 36
crop_size = 32

[generator]
name = "narrow"
width = 8
"""

ABLATION = """
from typing import Any

import cgfw
from pydantic import BaseModel, ConfigDict
from torch import nn

class NarrowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 16


def narrow(opts: NarrowOptions) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, opts.width, 3, padding=1), nn.Conv2d(opts.width, 3, 1))


def narrower(_options: Any) -> dict[str, Any]:
    return {"generator.width": 4}


@cgfw.hookimpl
def register_generators(register: cgfw.Register) -> None:
    register("narrow", narrow, NarrowOptions, "two convs")


@cgfw.hookimpl
def register_recipes(register: cgfw.Register) -> None:
    register("narrow_study", lambda _options: PATH, None, "the narrow generator")


@cgfw.hookimpl
def register_ablations(register: cgfw.Register) -> None:
    register("narrower", narrower, None, "a quarter of the width")
"""


def test_a_plugin_ablation_without_a_base_is_shown_on_a_recipe_it_applies_to(
    fake_distribution: Callable[[str, str], Path], tmp_path: Path, cli: Any
) -> None:
    recipe = tmp_path / "narrow_study.toml"
    recipe.write_text(NARROW_RECIPE, encoding="utf-8")
    fake_distribution("cgfw-narrow", ABLATION + f"\nPATH = {str(recipe)!r}\n")
    result = cli("components", "ablation")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ narrower "))
    assert "narrow_study: g_ab_gan" in row and "does not apply" not in row
