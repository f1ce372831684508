"""Load plugins from the ``cgfw`` entry-point group, one at a time, so one broken plugin breaks
only the recipes that need it (llm's issue 1280 is the counter-example)."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import re
import traceback
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from cgfw.errors import CgfwError
from cgfw.plugin import hookspecs
from cgfw.plugin.registry import KINDS, BrokenPlugin, Registry

GROUP = "cgfw"


@dataclass
class PluginInfo:
    """One entry point as `cgfw plugins` shows it."""

    name: str
    target: str
    distribution: str
    version: str
    status: str = "ok"  # ok | broken | disabled | not loaded (provides none of the hooks asked)
    error: str = ""
    provides: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Loaded:
    """The result of loading every plugin: the registry and a record per plugin."""

    registry: Registry
    plugins: list[PluginInfo]


def _short_error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({frame[0].filename}:{frame[0].lineno})" if frame else ""
    said = f": {exc}" if str(exc) else ""  # a bare KeyboardInterrupt says nothing
    return f"{type(exc).__name__}{said}{where}"


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get("CGFW_DISABLE_PLUGINS", "").split(",") if n.strip()}


def implements(ep: md.EntryPoint, hooks: Collection[str]) -> bool:
    """Whether the entry point's module defines one of `hooks`, read from its source without
    importing it (and so without the torch its networks import); True when that cannot be
    told from the source (an object as the target, a compiled module)."""
    module, _, attr = ep.value.partition(":")
    if attr:
        return True
    try:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return True
        with open(spec.origin, encoding="utf-8") as f:
            source = f.read()
    except Exception:  # the import will say what is wrong, as for any broken plugin
        return True
    # A hook is a module-level function (pluggy reads the module's attributes); a regex over the
    # source is a hundred times cheaper than parsing it, which matters to `cgfw --help`.
    defined = set(re.findall(r"^(?:async\s+)?def\s+(register_\w+)\s*\(", source, flags=re.M))
    return bool(defined & set(hooks))


_dists: dict[str, tuple[str, str]] = {}


def _name_version(dist: md.Distribution | None) -> tuple[str, str] | None:
    """A distribution's name and version, read once per process: parsing its METADATA for
    each of its entry points was a third of `cgfw --help`'s time."""
    if dist is None:
        return None
    key = str(getattr(dist, "_path", id(dist)))
    if key not in _dists:
        meta = dist.metadata
        _dists[key] = (meta["Name"], meta["Version"])
    return _dists[key]


def load_plugins(
    entry_points: Iterable[md.EntryPoint] | None = None, hooks: Collection[str] | None = None
) -> Loaded:
    """Import each entry point of the group on its own, check its hooks, and let it register.
    With `hooks`, only the plugins whose modules define one of them are imported: what
    `cgfw --help` (commands) and `cgfw recipes` need, without every network's imports.

    A fresh PluginManager per call: no global state, so tests can load different plugin sets.
    """
    if entry_points is None:
        entry_points = md.entry_points(group=GROUP)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    infos: list[PluginInfo] = []
    disabled = _disabled()
    seen: set[str] = set()
    for ep in sorted(entry_points, key=lambda e: e.name):
        if ep.name in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(ep.name)
        dist = ep.dist
        info = PluginInfo(
            name=ep.name,
            target=ep.value,
            distribution=names[0] if (names := _name_version(dist)) else "?",
            version=names[1] if names else "?",
        )
        infos.append(info)
        if ep.name in disabled:
            info.status = "disabled"
            continue
        if hooks is not None and not implements(ep, hooks):
            info.status = "not loaded"
            continue
        try:
            _register_one(pm, registry, ep.name, ep.load(), info)
        # A plugin's bug must not take the others down, nor end the command: a module that
        # calls sys.exit() (SystemExit) or raises KeyboardInterrupt or GeneratorExit at import
        # is broken like one raising an Exception. That also catches a real Ctrl-C during the
        # second that plugins load; it marks that plugin broken and the command goes on, a
        # price worth a `cgfw plugins` that always lists what is installed.
        except BaseException as exc:
            info.status, info.error = "broken", _short_error(exc)
            registry.drop_plugin(ep.name)  # half a registration is worse than none
            registry.broken.append(BrokenPlugin(ep.name, info.error))
    if os.environ.get("CGFW_STRICT_PLUGINS") == "1" and registry.broken:
        lines = "\n".join(f"  {b.name}: {b.error}" for b in registry.broken)
        raise CgfwError(f"broken plugins (CGFW_STRICT_PLUGINS=1):\n{lines}")
    return Loaded(registry, infos)


def _register_one(
    pm: pluggy.PluginManager, registry: Registry, name: str, plugin: Any, info: PluginInfo
) -> None:
    pm.register(plugin, name=name)
    try:
        # A misspelled hook (register_generator) would otherwise be silently ignored.
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        raise CgfwError(f"{exc}; the hooks cgfw knows are {', '.join(KINDS.values())}") from None
    for kind, hook_name in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == name:
                impl.function(register=registry.register_function(kind, name))
    info.provides = {
        kind: sorted(n for n, c in table.items() if c.plugin == name)
        for kind, table in registry.components.items()
    }
    info.provides = {k: v for k, v in info.provides.items() if v}
