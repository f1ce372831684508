"""The layering rules, read from the source (AST): the library never imports the command line,
each layer imports only the layers under it, only cgfw/store/ knows the files of a run
directory or the keys of a checkpoint, and plugins and the examples import only `cgfw` and
`cgfw.errors`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CGFW = ROOT / "cgfw"

# Bottom up. A module may import its own layer and those below it; `cgfw/__init__.py` (the
# public surface, all lazy) and `cgfw/api.py` (the Python API) sit beside the command line.
LAYERS: list[tuple[str, ...]] = [
    ("cgfw.errors", "cgfw.terminal"),
    ("cgfw.plugin",),
    ("cgfw.recipe", "cgfw.images", "cgfw.planes"),
    ("cgfw.store",),
    ("cgfw.training",),
    ("cgfw.session",),
    ("cgfw.tools",),
    ("cgfw.api", "cgfw.cli", "cgfw.__main__"),
    # Old module paths, re-exporting their new homes for plugins written before the layers.
    tuple(
        f"cgfw.{old}"
        for old in (
            "hookspecs",
            "registry",
            "plugins",
            "model",
            "trainer",
            "tracking",
            "tensorboard",
            "data",
            "launching",
            "layout",
            "checkpoint",
        )
    ),
]


def layer_of(module: str) -> int:
    for level, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return level
    raise AssertionError(f"{module} is in no layer; add it to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int]]:
    """Every cgfw module `path` imports, at any depth of the code (lazy imports count too),
    with its line; `from cgfw import x` counts as importing cgfw.x when x is a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("cgfw")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "cgfw":
                for a in node.names:
                    sub = CGFW / a.name
                    if sub.is_dir() or sub.with_suffix(".py").is_file():
                        found.append((f"cgfw.{a.name}", node.lineno))
            elif node.module.startswith("cgfw."):
                found.append((node.module, node.lineno))
    return found


def library_files() -> list[Path]:
    return sorted(p for p in CGFW.rglob("*.py") if p.name != "__init__.py" or p.parent != CGFW)


def test_each_layer_imports_only_the_layers_under_it() -> None:
    wrong = []
    for path in library_files():
        here = module_name(path)
        for target, line in imports(path):
            if target == "cgfw":
                continue
            if layer_of(target) > layer_of(here):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "a layer imports one above it:\n" + "\n".join(wrong)


def test_nothing_but_the_command_line_imports_it() -> None:
    outside = [
        p
        for p in [*library_files(), *(ROOT / "plugins").rglob("*.py")]
        if not module_name(p).startswith(("cgfw.cli", "cgfw.__main__"))
    ]
    wrong = [
        f"{p.relative_to(ROOT)}:{line}"
        for p in outside
        for target, line in imports(p)
        if target.startswith("cgfw.cli")
    ]
    assert not wrong, "cgfw.cli imported from:\n" + "\n".join(wrong)


def _code_strings(path: Path) -> list[tuple[str, int]]:
    """String constants of the code with their lines, docstrings and f-string text left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside_fstrings = {
        id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values
    }
    return [
        (node.value, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and id(node) not in inside_fstrings
    ]


# The names of a run directory's records and of a checkpoint's keys, which only cgfw/store/
# may spell out (messages may mention them inside f-strings).
RUN_FILES = {
    "recipe.toml", "run.json", "final_losses.json", "metrics.json", "trackers.json",
    "checkpoints", "latest.pt", "previous.pt", "variant.toml", "log.txt", "ablation.json",
    "jobs.json",
}  # fmt: skip
CHECKPOINT_KEYS = {"format", "iteration", "epoch", "rng", "recipe", "ema"}


def _subscript_keys(path: Path) -> list[tuple[str, int]]:
    return [
        (node.slice.value, node.lineno)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ]


@pytest.mark.parametrize("folder", ["cgfw", "plugins", "examples"])
def test_only_the_store_names_the_files_of_a_run_directory(folder: str) -> None:
    wrong = [
        f"{p.relative_to(ROOT)}:{line}: {text!r}"
        for p in (ROOT / folder).rglob("*.py")
        if CGFW / "store" not in p.parents
        for text, line in _code_strings(p)
        if text in RUN_FILES
    ]
    assert not wrong, "ask cgfw.RunDir for these paths:\n" + "\n".join(wrong)


@pytest.mark.parametrize("folder", ["cgfw", "plugins", "examples"])
def test_only_the_store_indexes_a_checkpoint(folder: str) -> None:
    """`x["iteration"]`, `x["recipe"]`, ... outside cgfw/store: a checkpoint's dict read by
    hand, where `Checkpoint`'s fields say what is there."""
    wrong = [
        f"{p.relative_to(ROOT)}:{line}: [{key!r}]"
        for p in (ROOT / folder).rglob("*.py")
        if CGFW / "store" not in p.parents
        for key, line in _subscript_keys(p)
        if key in CHECKPOINT_KEYS
    ]
    assert not wrong, "use cgfw.Checkpoint's fields:\n" + "\n".join(wrong)


# Writers that put bytes into files; outside the store only for the user's own outputs.
WRITERS = {"write_text", "write_bytes", "dump", "save"}
# module -> why it may write: the files it writes are the user's outputs, not a run's records.
MAY_WRITE = {
    "cgfw.planes": "translated images and arrays where the user asked",
    "cgfw.tools.translate": "translated images where the user asked",
    "cgfw.tools.export": "exported networks (RUN_DIR/export/ or --output)",
    "cgfw.tools.grid": "a comparison grid where the user asked",
    "cgfw.training.tensorboard": "the sample grid PNGs at the path RunDir.sample gives",
    "cgfw.cli.bench": "a benchmark report where the user asked (--output)",
}


def _writes(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = (
            fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
        )
        through_store = isinstance(fn, ast.Attribute) and ast.unparse(fn.value) == "checkpoint"
        if name in WRITERS and not through_store:
            found.append((ast.unparse(fn), node.lineno))
    return found


def test_only_the_store_writes_records() -> None:
    wrong = [
        f"{p.relative_to(ROOT)}:{line}: {call}(...)"
        for p in library_files()
        if CGFW / "store" not in p.parents and module_name(p) not in MAY_WRITE
        for call, line in _writes(p)
    ]
    assert not wrong, "write through cgfw.RunDir / cgfw.store:\n" + "\n".join(wrong)


def test_plugins_and_examples_import_only_the_public_surface() -> None:
    allowed = {"cgfw", "cgfw.errors"}
    wrong = []
    for folder in ("plugins", "examples"):
        for p in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(p.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] == "cgfw" and name not in allowed:
                        wrong.append(f"{p.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not wrong, "import these from cgfw (or cgfw.errors):\n" + "\n".join(wrong)


def test_every_public_name_resolves() -> None:
    """`cgfw.__all__` names what `cgfw.X` gives: a moved module would otherwise break plugins
    only when they touch the name."""
    import cgfw

    missing = [n for n in cgfw.__all__ if not hasattr(cgfw, n)]
    assert not missing


def test_no_public_name_is_also_a_module_of_cgfw() -> None:
    """`cgfw.train` (the API's function) would turn into the package cgfw/train/ as soon as
    anything imported a module under it: Python sets a package's submodules as attributes."""
    modules = {p.stem for p in CGFW.glob("*.py")} | {p.name for p in CGFW.iterdir() if p.is_dir()}
    import cgfw

    assert not sorted(set(cgfw.__all__) & modules)
