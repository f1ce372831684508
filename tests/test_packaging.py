"""The wheel `pip install cgfw` builds holds every module and data file (an editable install
would hide a package missing from pyproject.toml)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
SOURCES = {
    "cgfw": ROOT / "cgfw",
    "cgfw_paper": ROOT / "plugins" / "cgfw_paper",
    "cgfw_field": ROOT / "plugins" / "cgfw_field",
    "cgfw_track": ROOT / "plugins" / "cgfw_track",
    "cgfw_launch": ROOT / "plugins" / "cgfw_launch",
}


def test_the_wheel_holds_every_module_recipe_and_data_file(tmp_path: Path) -> None:
    # A copy of the sources without build/: setuptools would reuse a stale build/lib.
    tree = tmp_path / "src"
    for name in ("cgfw", "plugins", "recipes"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(tree)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("cgfw-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"cgfw_recipes/{p.name}" for p in (ROOT / "recipes").glob("*.toml")}
    for package, source in SOURCES.items():
        shipped = [*source.rglob("*.py"), *source.rglob("py.typed"), *source.glob("data/emoji/*")]
        for path in shipped:
            if "__pycache__" not in path.parts:
                expected.add(f"{package}/{path.relative_to(source).as_posix()}")
    assert expected - names == set()
