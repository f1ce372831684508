"""Plugins are found through real entry points: a distribution on a temporary sys.path."""

import json
import os
import subprocess
import sys

import pytest

from cgfw.errors import CgfwError
from cgfw.plugin.loader import load_plugins

EXTERNAL_GENERATOR = """
    import cgfw
    from pydantic import BaseModel, ConfigDict
    from torch import nn

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        width: int = 8

    def tiny(opts):
        return nn.Sequential(nn.Conv2d(3, opts.width, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(opts.width, 3, 3, padding=1), nn.Tanh())

    @cgfw.hookimpl
    def register_generators(register):
        register("tiny", tiny, Options, "two convs")
"""


def test_default_plugins_come_through_the_entry_point_group() -> None:
    loaded = load_plugins()
    by_name = {p.name: p for p in loaded.plugins}
    assert by_name["paper-generators"].distribution == "cgfw"
    assert by_name["paper-generators"].provides == {"generator": ["resnet", "resnet_upsample"]}
    assert all(p.status == "ok" for p in loaded.plugins)


def test_external_generator_is_used_by_a_recipe(fake_distribution, tiny_recipe, cli) -> None:  # type: ignore[no-untyped-def]
    fake_distribution("cgfw-tiny", EXTERNAL_GENERATOR)
    info = {p.name: p for p in load_plugins().plugins}["cgfw-tiny"]
    assert (info.distribution, info.version, info.status) == ("cgfw-tiny", "1.2.3", "ok")
    result = cli(
        "run",
        tiny_recipe,
        "--set",
        'generator={name="tiny", width=4}',
        "--set",
        "train.max_iters=2",
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = (tiny_recipe.parent / "runs").iterdir()
    assert 'name = "tiny"' in (run_dir / "recipe.toml").read_text()
    assert (
        json.loads((run_dir / "run.json").read_text())["plugins"]["cgfw-tiny"]["version"] == "1.2.3"
    )


def test_broken_plugin_is_recorded_and_the_rest_still_load(fake_distribution) -> None:  # type: ignore[no-untyped-def]
    fake_distribution("cgfw-broken", "raise RuntimeError('boom at import')\n")
    loaded = load_plugins()
    broken = {p.name: p for p in loaded.plugins}["cgfw-broken"]
    assert broken.status == "broken" and "RuntimeError: boom at import" in broken.error
    assert "resnet" in loaded.registry.names("generator")
    with pytest.raises(CgfwError, match=r"plugin 'cgfw-broken' failed to load.*boom at import"):
        loaded.registry.get("generator", "unet")


def test_plugin_failing_during_registration_leaves_nothing_behind(fake_distribution) -> None:  # type: ignore[no-untyped-def]
    fake_distribution(
        "cgfw-half",
        """
        import cgfw
        @cgfw.hookimpl
        def register_generators(register):
            register("half", lambda o: None)
            raise ValueError("second one failed")
        """,
    )
    loaded = load_plugins()
    assert {p.name: p.status for p in loaded.plugins}["cgfw-half"] == "broken"
    assert "half" not in loaded.registry.names("generator")


def test_misspelled_hook_is_an_error_not_silence(fake_distribution) -> None:  # type: ignore[no-untyped-def]
    fake_distribution(
        "cgfw-typo",
        """
        import cgfw
        @cgfw.hookimpl
        def register_generator(register):
            register("typo", lambda o: None)
        """,
    )
    info = {p.name: p for p in load_plugins().plugins}["cgfw-typo"]
    assert info.status == "broken"
    assert "register_generator" in info.error and "register_generators" in info.error


def test_duplicate_across_plugins_names_both(fake_distribution) -> None:  # type: ignore[no-untyped-def]
    fake_distribution("cgfw-dupe", EXTERNAL_GENERATOR.replace('"tiny"', '"resnet"'))
    with pytest.raises(CgfwError, match="cgfw-dupe"):
        load_plugins().registry.get("generator", "resnet")


def test_disable_and_strict_switches(fake_distribution, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake_distribution("cgfw-broken", "raise ImportError('missing dep')\n")
    monkeypatch.setenv("CGFW_STRICT_PLUGINS", "1")
    with pytest.raises(CgfwError, match="cgfw-broken: ImportError: missing dep"):
        load_plugins()
    monkeypatch.setenv("CGFW_DISABLE_PLUGINS", "cgfw-broken")
    statuses = {p.name: p.status for p in load_plugins().plugins}
    assert statuses["cgfw-broken"] == "disabled"


def test_cgfw_plugins_command_survives_a_broken_plugin(fake_distribution) -> None:  # type: ignore[no-untyped-def]
    site = fake_distribution("cgfw-broken", "raise RuntimeError('boom')\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    cmd = [sys.executable, "-m", "cgfw", "plugins", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    statuses = {p["name"]: p["status"] for p in json.loads(proc.stdout)}
    assert statuses["cgfw-broken"] == "broken" and statuses["paper-generators"] == "ok"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
        ("raise GeneratorExit('odd')\n", "GeneratorExit: odd"),
    ],
    ids=["sys.exit", "KeyboardInterrupt", "GeneratorExit"],
)
def test_a_plugin_raising_a_base_exception_at_import_is_broken_not_fatal(  # type: ignore[no-untyped-def]
    fake_distribution, tiny_recipe, cli, source: str, error: str
) -> None:
    fake_distribution("cgfw-quits", source)
    info = {p.name: p for p in load_plugins().plugins}["cgfw-quits"]
    assert info.status == "broken" and error in info.error
    listed = cli("plugins", "--json")
    assert listed.exit_code == 0, listed.output
    statuses = {p["name"]: p["status"] for p in json.loads(listed.stdout)}
    assert statuses["cgfw-quits"] == "broken" and statuses["paper-generators"] == "ok"
    shown = cli("recipe", "show", tiny_recipe)
    assert shown.exit_code == 0 and 'name = "resnet"' in shown.stdout, shown.output


def test_a_plugin_exiting_while_it_registers_leaves_nothing(fake_distribution) -> None:  # type: ignore[no-untyped-def]
    fake_distribution(
        "cgfw-exits",
        """
        import sys
        import cgfw
        @cgfw.hookimpl
        def register_generators(register):
            register("gone", lambda o: None)
            sys.exit("no GPU here")
        """,
    )
    loaded = load_plugins()
    info = {p.name: p for p in loaded.plugins}["cgfw-exits"]
    assert info.status == "broken" and "SystemExit: no GPU here" in info.error
    assert "gone" not in loaded.registry.names("generator")
