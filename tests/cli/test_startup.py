"""Commands that only look things up start without torch: `cgfw --help`, `--version`,
`cgfw recipes`, `cgfw recipe show` and `cgfw plugins` import neither torch (nor gradio, which
`cgfw demo` needs) nor a plugin module that does (benchmarks/startup.py times them). The
bundled plugins register their networks, losses, datasets and model lazily (`cgfw.lazy`), so
loading every plugin imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
sys.argv = ["cgfw", *json.loads(sys.argv[1])]
from cgfw.cli import main
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "gradio"})
plugins = sorted(m for m in sys.modules if m.split(".")[0] in {"cgfw_paper", "cgfw_field",
                 "cgfw_track", "cgfw_launch"})
print(json.dumps({"heavy": heavy[:3], "plugins": plugins}), file=sys.stderr)
"""


def _imports(*args: str) -> tuple[str, dict[str, list[str]]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, timeout=120
    )
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("recipes",), ("demo", "--help")])
def test_looking_things_up_imports_no_torch(args: tuple[str, ...]) -> None:
    out, found = _imports(*args)
    assert out.strip(), "the command printed nothing"
    assert found["heavy"] == [], f"cgfw {' '.join(args)} imported {found['heavy']}"
    # A package's own __init__ is read to find its modules; the modules that register
    # networks, losses and models are not imported.
    light = {"cgfw_paper.commands", "cgfw_paper.recipes"}
    heavy = [m for m in found["plugins"] if "." in m and m not in light]
    assert heavy == [], f"cgfw {' '.join(args)} imported plugin modules {heavy}"


def test_help_still_lists_every_command_with_its_line() -> None:
    out, _ = _imports("--help")
    names = ("run", "translate", "ablate", "eval", "export", "demo", "import-weights", "recipes")
    for name in names:
        assert f"  {name} " in out, name
    assert "Turn networks trained with the authors' code" in out  # read from the plugin
    assert "Translate INPUT" in out  # read from cgfw/cli/translate.py's source, not imported


@pytest.mark.parametrize(
    "args", [("plugins",), ("recipe", "show", "paper_default"), ("recipe", "show", "quickstart")]
)
def test_reading_recipes_and_plugins_imports_no_torch(args: tuple[str, ...]) -> None:
    """These load every plugin and validate a whole recipe: the registration modules and the
    recipe layer are torch-free; the networks' modules are imported only to build them."""
    out, found = _imports(*args)
    assert "paper-models" in out or "[generator]" in out, out[-2000:]
    assert found["heavy"] == [], f"cgfw {' '.join(args)} imported {found['heavy']}"
    lazy_targets = {"cgfw_paper.nets", "cgfw_paper.cyclegan", "cgfw_paper.image_sets"}
    assert lazy_targets.isdisjoint(found["plugins"]), found["plugins"]
