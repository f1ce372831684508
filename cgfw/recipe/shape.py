"""What a recipe's data must look like before the schema reads it: tables and arrays nested no
deeper than MAX_DEPTH, numbers that are finite, sections that are tables and component names
that are strings. Without these checks a value where a section belongs reads as the section
left out (the default network, silently), a number as a name ends in a TypeError, and a deep
document in a RecursionError."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from typing import Any

import tomli_w

from cgfw.errors import CgfwError
from cgfw.plugin.registry import Registry
from cgfw.recipe.schema import ENGINE_SECTIONS, Recipe, Slot

# Tables and arrays inside one another, the top-level table not counted. The deepest keys a
# recipe has are three levels down (run.trackers[0].uri); 32 leaves room for any plugin's
# options and stays far below Python's recursion limit (1,000 frames), into which tomllib,
# copy.deepcopy, pydantic and tomli_w each recurse a few frames per level.
MAX_DEPTH = 32


def depth(value: Any, cap: int = MAX_DEPTH + 1) -> int:
    """How deep tables and arrays nest in `value` (a scalar: 0, [1]: 1, [[1]]: 2), counted no
    further than `cap`, so that a deep value costs no deep recursion here."""
    if not isinstance(value, dict | list | tuple):
        return 0
    if cap <= 1:
        return 1
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((depth(child, cap - 1) for child in children), default=0)


def too_deep(where: str) -> CgfwError:
    return CgfwError(
        f"{where}: tables and arrays nested deeper than {MAX_DEPTH} levels (a recipe's deepest "
        "key, run.trackers[0].uri, is three); write it flatter"
    )


def check_depth(document: Mapping[str, Any], where: str) -> None:
    if any(depth(value) > MAX_DEPTH for value in document.values()):
        raise too_deep(where)


def loads(text: str, where: str) -> dict[str, Any]:
    """TOML text as tomllib reads it, refused when nested deeper than MAX_DEPTH: tomllib itself
    recurses once per level and a 2,000-deep array would end in a RecursionError. A
    tomllib.TOMLDecodeError is the caller's to explain."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise too_deep(where) from None
    check_depth(data, where)
    return data


def check_finite(data: Mapping[str, Any], source: str) -> None:
    """TOML has inf and nan, which pass a `gt=0` bound and poison every tensor they touch; no
    option of the engine or a plugin means either."""
    for key, value in _leaves(data, ""):
        if isinstance(value, float) and not math.isfinite(value):
            raise CgfwError(f"{source}: {key}: must be a finite number (got {value})")


def _leaves(node: Any, key: str) -> list[tuple[str, Any]]:
    if isinstance(node, Mapping):
        items: list[tuple[str, Any]] = []
        for k, v in node.items():
            items += _leaves(v, f"{key}.{k}" if key else str(k))
        return items
    if isinstance(node, list | tuple):
        return [leaf for i, v in enumerate(node) for leaf in _leaves(v, f"{key}.{i}")]
    return [(key, node)]


def check_sections(
    data: Mapping[str, Any], slots: Mapping[str, Slot], registry: Registry, source: str
) -> None:
    """Each engine section and each of the model's slots, where the recipe has it, is a table,
    as is every table on the way to a slot ([losses] of losses.gan); a slot's `name` is a
    non-empty string. `slots` includes "model", the engine's data and schedule."""
    for path, slot in slots.items():
        parts = path.split(".")
        for i in range(1, len(parts)):
            outer = ".".join(parts[:i])
            if _get(data, outer) is not None and not isinstance(_get(data, outer), dict):
                below = sorted(p.split(".", i)[i] for p in slots if p.startswith(f"{outer}."))
                raise CgfwError(
                    f"{source}: {outer}: must be a table of its sections ({', '.join(below)}), "
                    f"e.g. {outer}={{{path.split('.', i)[i]}={{name='{_name(slot, registry)}'}}}}"
                    f" (got {_get(data, outer)!r})"
                )
        section = _get(data, path)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise CgfwError(
                f"{source}: {path}: must be a table, e.g. [{path}] in a recipe or "
                f"--set {path}={{name='{_name(slot, registry)}'}} (got {section!r})"
            )
        name = section.get("name")
        if name is not None and not (isinstance(name, str) and name):
            raise CgfwError(f"{source}: {path}.name: {name_error(name, slot.kind, registry)}")
    for key in ENGINE_SECTIONS:
        value = data.get(key)
        if key not in ("extends", *slots) and value is not None and not isinstance(value, dict):
            raise CgfwError(
                f"{source}: {key}: must be a table, e.g. [{key}] in a recipe or "
                f"--set {key}={{{_example_key(key)}}} (got {value!r})"
            )


def name_error(name: Any, kind: str, registry: Registry) -> str:
    known = ", ".join(registry.names(kind)) or "none installed"
    return f"must be a string naming a {kind.replace('_', ' ')} (known: {known}); got {name!r}"


def _get(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _name(slot: Slot, registry: Registry) -> str:
    """A name to show in an example: the slot's default, else the first installed one."""
    return slot.default or next(iter(registry.names(slot.kind)), "NAME")


def _example_key(section: str) -> str:
    """`key=value` for the section's first option with a default, e.g. seed=0."""
    annotation = Recipe.model_fields[section].annotation
    fields = getattr(annotation, "model_fields", {})
    for key, field in fields.items():
        if field.default is not None:
            value = field.default
            shown = f"'{value}'" if isinstance(value, str) else tomli_w.dumps({"v": value})[4:]
            return f"{key}={shown.strip()}"
    return "..."
