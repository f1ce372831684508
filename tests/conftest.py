"""Shared fixtures: tiny recipes (32 px, ngf 8, 2 blocks), image folders and fake plugins."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Under pytest-xdist each worker takes one core: torch's default of one thread per core in every
# worker would oversubscribe them. Set before torch is imported, and inherited by the runs the
# tests start in child processes, so a child and its in-process twin use the same thread count.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from click.testing import CliRunner, Result
from PIL import Image

from cgfw.cli import main
from cgfw.plugin.loader import Loaded, load_plugins

TINY = """
[run]
name = "tiny"
seed = 0
output_dir = "{out}"

[data]
name = "emoji"
load_size = 36
crop_size = 32

[generator]
name = "resnet"
n_blocks = 2
ngf = 8

[discriminator]
name = "patchgan"
n_layers = 2
ndf = 8

[schedule]
name = "constant"

[train]
max_iters = 4
batch_size = 2
device = "cpu"
log_every = 2
image_every = 2
checkpoint_every = 2
samples = 2
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked gpu need CUDA; without it they are skipped, and say so."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run benchmarks/gpu_check.sh on one)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`cgfw eval`'s reference statistics go to a folder of the test session, never to the
    user's ~/.cache/cgfw (cgfw_paper/references.py)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CGFW_CACHE", str(tmp_path_factory.mktemp("cgfw-cache")))
    yield
    mp.undo()


@pytest.fixture
def loaded() -> Loaded:
    return load_plugins()


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    """A 32 px recipe on the embedded emoji that trains in about a second."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(out=tmp_path / "runs"), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny training run shared by every test that only reads a run (translate, export):
    training is the slow part."""
    root = tmp_path_factory.mktemp("trained")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY.format(out=root / "runs"), encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root / "runs")
    return run


def make_folder_dataset(
    root: Path, counts: dict[str, int], size: tuple[int, int] = (40, 48)
) -> Path:
    """The authors' layout with solid-colour images, one colour per image."""
    for sub, n in counts.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = (10 * i % 256, 255 - 10 * i % 256, 128 if sub.endswith("A") else 30)
            Image.new("RGB", size, colour).save(root / sub / f"{i:03d}.png")
    return root


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "h2z", {"trainA": 3, "trainB": 5, "testA": 2, "testB": 2})


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Invoke `cgfw ARGS...` in-process; stderr is kept apart from stdout."""

    def invoke(*args: Any) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def run_dirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir())


@pytest.fixture
def fake_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, str], Path]:
    """Install a real distribution (dist-info with entry_points.txt) on a temporary sys.path:
    the same discovery path a pip-installed third-party plugin takes."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(name: str, module_source: str) -> Path:
        module = name.replace("-", "_")
        # Another test's module of the same name, still imported, would shadow this one.
        monkeypatch.delitem(sys.modules, module, raising=False)
        (site / f"{module}.py").write_text(textwrap.dedent(module_source), encoding="utf-8")
        info = site / f"{module}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(f"[cgfw]\n{name} = {module}\n", encoding="utf-8")
        importlib.invalidate_caches()
        return site

    return install


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
