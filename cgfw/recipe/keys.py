"""Dotted recipe keys: `--set a.b=VALUE` parsed, and nested tables read and written by key."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from cgfw.errors import CgfwError
from cgfw.recipe.shape import MAX_DEPTH, depth, loads, too_deep


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=VALUE` -> (["a", "b"], value); VALUE is read as TOML, else kept as a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(p.strip() for p in parts):
        raise CgfwError(
            f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set generator.n_blocks=6"
        )
    where = f"--set {key if len(key) <= 40 else key[:40] + '...'}=..."
    value = parse_value(raw, where)
    if len(parts) - 1 + depth(value) > MAX_DEPTH:  # a.b.c=1 is two tables deep
        raise too_deep(where)
    return [p.strip() for p in parts], value


def parse_value(raw: str, where: str = "value") -> Any:
    """A command-line value read as TOML, else kept as a plain string (data.root=/tmp/h2z)."""
    try:
        return loads(f"v = {raw.strip()}", where)["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data["a"]["b"] = value for key "a.b", creating sections on the way."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise CgfwError(f"'{key}': '{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def get_dotted(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become strings (HParams takes scalars only)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out
