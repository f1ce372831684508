"""Registers the recipes bundled in ``recipes/`` (installed as ``cgfw_recipes``) by file name."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from cgfw import Register, hookimpl


def _summary(recipe: Traversable) -> str:
    first = recipe.read_text(encoding="utf-8").splitlines()[:1]
    return first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""


def _path(recipe: Traversable) -> Any:
    return lambda _opts: recipe


@hookimpl
def register_recipes(register: Register) -> None:
    for recipe in sorted(files("cgfw_recipes").iterdir(), key=lambda r: r.name):
        if recipe.name.endswith(".toml"):
            register(recipe.name.removesuffix(".toml"), _path(recipe), None, _summary(recipe))
