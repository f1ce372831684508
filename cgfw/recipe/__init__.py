"""Recipes: the schema (schema.py), dotted keys and `--set` values (keys.py), reading, `extends`
and validation into a `Resolved` recipe (resolve.py), the networks' channel counts (channels.py)
and the `[run] trackers` check (trackers.py). Import what you need from here."""

from cgfw.recipe.keys import get_dotted, parse_override, parse_value, set_dotted
from cgfw.recipe.resolve import (
    Resolved,
    apply_overrides,
    default_model,
    find_recipe,
    load,
    load_data,
    merge,
    model_of,
    read_recipe,
    read_toml,
    set_key,
    set_values,
    slots_of,
    validate,
    validate_overridden,
    validate_stages,
)
from cgfw.recipe.schema import ENGINE_SECTIONS, ENGINE_SLOTS, Recipe, Slot, TrainSection
from cgfw.recipe.shape import MAX_DEPTH

__all__ = [
    "ENGINE_SECTIONS",
    "ENGINE_SLOTS",
    "MAX_DEPTH",
    "Recipe",
    "Resolved",
    "Slot",
    "TrainSection",
    "apply_overrides",
    "default_model",
    "find_recipe",
    "get_dotted",
    "load",
    "load_data",
    "merge",
    "model_of",
    "parse_override",
    "parse_value",
    "read_recipe",
    "read_toml",
    "set_dotted",
    "set_key",
    "set_values",
    "slots_of",
    "validate",
    "validate_overridden",
    "validate_stages",
]
