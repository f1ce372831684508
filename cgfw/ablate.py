"""Ablation studies: a base recipe and one-change variants, each run in its own directory."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from typing import Any

from cgfw.errors import CgfwError
from cgfw.recipe import get_dotted, set_dotted
from cgfw.registry import Registry


@dataclass
class Variant:
    label: str  # also its directory name
    data: dict[str, Any]


def _parse_vary(text: str) -> tuple[str, list[Any]]:
    key, sep, raw = text.partition("=")
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not sep or not key.strip() or not values:
        raise CgfwError(f"--vary {text!r}: expected KEY=V1,V2 e.g. --vary generator.n_blocks=6,9")
    parsed = []
    for v in values:
        try:
            parsed.append(tomllib.loads(f"v = {v}")["v"])
        except tomllib.TOMLDecodeError:
            parsed.append(v)
    return key.strip(), parsed


def plan(
    base: dict[str, Any],
    disable: list[str],
    vary: list[str],
    registry: Registry,
    resolved_base: dict[str, Any],
) -> list[Variant]:
    """The base run, one variant per --disable, and one per --vary value unlike the base's
    (`resolved_base` has every default filled in, to tell what the base's value is).

    Variants change one thing each (an ablation, not a grid search).
    """
    variants = [Variant("base", base)]
    for name in disable:
        data = copy.deepcopy(base)
        for key, value in registry.get("ablation", name).factory(None).items():
            set_dotted(data, key, value)
        variants.append(Variant(f"no-{name}", data))
    for text in vary:
        key, values = _parse_vary(text)
        for value in values:
            if get_dotted(resolved_base, key) == value:
                continue
            data = copy.deepcopy(base)
            set_dotted(data, key, value)
            variants.append(Variant(f"{key}={value}", data))
    if len(variants) == 1:
        raise CgfwError("nothing to compare: give --disable NAME or --vary KEY=V1,V2")
    return variants
