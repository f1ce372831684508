"""What a model reads of its recipe: a read-only view of the resolved recipe, so a model cannot
change what the run records (recipe.toml, checkpoints) behind the engine's back."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from cgfw.plugin.registry import Component
from cgfw.recipe.resolve import Resolved
from cgfw.recipe.schema import Recipe, Slot


class RecipeView:
    """The resolved recipe as a model sees it: the engine's sections (`recipe`), each slot's
    component, options and model keys, and where it came from. Copies and read-only mappings:
    writing to any of them changes nothing the engine uses, and setting an attribute fails."""

    __slots__ = ("_resolved", "components", "keys", "model", "model_options", "options",
                 "recipe", "slots", "source")  # fmt: skip

    _resolved: Resolved
    recipe: Recipe
    source: str
    model: Component
    model_options: BaseModel
    slots: Mapping[str, Slot]
    components: Mapping[str, Component]
    options: Mapping[str, BaseModel]
    keys: Mapping[str, BaseModel]

    def __init__(self, resolved: Resolved) -> None:
        fields = {
            "_resolved": resolved,
            "recipe": resolved.recipe.model_copy(deep=True),
            "source": resolved.source,
            "model": resolved.model,
            "model_options": resolved.model_options.model_copy(deep=True),
            "slots": MappingProxyType(dict(resolved.slots)),
            "components": MappingProxyType(dict(resolved.components)),
            "options": MappingProxyType(
                {k: v.model_copy(deep=True) for k, v in resolved.options.items()}
            ),
            "keys": MappingProxyType(
                {k: v.model_copy(deep=True) for k, v in resolved.keys.items()}
            ),
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a model's recipe is read-only (tried to set {name!r})")

    @property
    def model_class(self) -> Any:
        return self.model.target

    def section(self, path: str) -> dict[str, Any]:
        """A section's keys as written (a copy)."""
        return self._resolved.section(path)

    def to_dict(self) -> dict[str, Any]:
        """The complete recipe, every default filled in (a copy)."""
        return self._resolved.to_dict()
