"""`[run] trackers` checked against the registered trackers: names, options and, for training,
their packages; cgfw/training/tracking.py opens them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cgfw.errors import CgfwError
from cgfw.plugin.registry import Component, Registry


def _entries(
    trackers: Sequence[str | Mapping[str, Any]] | None, registry: Registry
) -> list[tuple[str, dict[str, Any]]]:
    if trackers is None:
        return [(n, {}) for n in default_trackers(registry)]
    entries: list[tuple[str, dict[str, Any]]] = []
    for entry in trackers:
        if isinstance(entry, str):
            entries.append((entry, {}))
        else:
            options = dict(entry)
            entries.append((str(options.pop("name", "")), options))
    return entries


def default_trackers(registry: Registry) -> list[str]:
    """The trackers a plugin marks `default = True` (cgfw's TensorBoard)."""
    return registry.defaults("tracker")


def resolve(
    trackers: Sequence[str | Mapping[str, Any]] | None,
    registry: Registry,
    check_packages: bool = False,
) -> list[tuple[Component, Any]]:
    """Each tracker's component and validated options; a wrong name or option is the recipe's
    error, and with `check_packages` (training) so is a tracker whose package is missing (its
    factory's `requires`): translate, export and eval of the run do not need it."""
    resolved, seen = [], set()
    for i, (name, options) in enumerate(_entries(trackers, registry)):
        where = f"run.trackers[{i}]"
        if not name:
            raise CgfwError(f'{where}: a table needs a name, e.g. {{name = "mlflow"}}')
        if name in seen:
            raise CgfwError(f"{where}: tracker '{name}' is listed twice; list it once")
        seen.add(name)
        try:
            component = registry.get("tracker", name)
        except CgfwError as exc:
            raise CgfwError(f"{where}: {exc}") from None
        parsed = component.parse_options(options, where)
        if check_packages:
            component.check_installed(where)
        resolved.append((component, parsed))
    return resolved
