"""Typed registries of components, filled by plugins; the engine builds everything through them."""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from cgfw.errors import CgfwError, did_you_mean

# kind -> the hook that fills it. The order is the order `cgfw components` shows them in.
KINDS: dict[str, str] = {
    "model": "register_models",
    "generator": "register_generators",
    "discriminator": "register_discriminators",
    "gan_loss": "register_gan_losses",
    "reconstruction_loss": "register_reconstruction_losses",
    "buffer": "register_buffers",
    "regularizer": "register_regularizers",
    "augment": "register_augments",
    "schedule": "register_schedules",
    "dataset": "register_datasets",
    "ablation": "register_ablations",
    "recipe": "register_recipes",
    "metric": "register_metrics",
    "tracker": "register_trackers",
    "launcher": "register_launchers",
    "command": "register_commands",
}


def check_kind(kind: str) -> None:
    """An error naming the closest kind and every kind, unless `kind` is one."""
    if kind not in KINDS:
        raise CgfwError(
            f"unknown kind '{kind}'{did_you_mean(kind, KINDS)} (known: {', '.join(KINDS)})"
        )


class NoOptions(BaseModel):
    """For components that take no options."""

    model_config = ConfigDict(extra="forbid")


# What a component may say of itself as keywords of `register(...)`, and what each means.
METADATA: dict[str, str] = {
    "default": "used when a recipe or command names none (metrics, trackers, a launcher, a model)",
    "requires": "(package, extra): the optional package it needs, named before a run starts",
    "pair": "a GAN loss called with the real and the fake scores together",
    "base": "an ablation's base recipe (for `cgfw components ablation`)",
    # A model's, read before it is built (validation, `recipe show`, translate): given here, the
    # model's module is not imported until the model is built (see `lazy`).
    "slots": "a model's recipe sections and the kind and default component of each",
    "directions": "a model's translations: {'a2b': (network, slot)}",
    "optimizer_defaults": "a model's [optimizer] values, used where the recipe sets none",
    "network_channels": "a model's (path, kind, channels) -> {in_channels, out_channels}",
}


class Lazy:
    """A factory named by "module:attribute" and imported the first time it is called, so that
    registering it imports neither the module nor what the module imports (torch): `cgfw
    --help`, `cgfw plugins` and `cgfw recipe show` stay fast. What the engine reads of a
    component before building it comes from `register(...)`'s keywords only, never from the
    target's attributes (reading those would import it)."""

    def __init__(self, target: str) -> None:
        module, _, attribute = target.partition(":")
        if not module or not attribute:
            raise TypeError(f"lazy factories are named 'package.module:attribute', got {target!r}")
        self.target = target
        self._loaded: Callable[..., Any] | None = None

    def load(self) -> Callable[..., Any]:
        if self._loaded is None:
            module, _, attribute = self.target.partition(":")
            found: Any = importlib.import_module(module)
            for part in attribute.split("."):
                found = getattr(found, part)
            self._loaded = found
            return found
        return self._loaded

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> Lazy:
    """`register("resnet", lazy("my_pkg.nets:resnet"), ResnetOptions, "...")`: the factory's
    module is imported when the component is first built."""
    return Lazy(target)


_warned: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Component:
    """A name a recipe can use, the factory behind it, the options it accepts and what it says
    of itself (`meta`: the keywords it was registered with, see METADATA)."""

    kind: str
    name: str
    factory: Callable[..., Any]
    options: type[BaseModel]
    summary: str
    plugin: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def info(self, key: str, default: Any = None) -> Any:
        """What the component registered as `key`; for plugins written before register took
        keywords, the factory's attribute of that name (with one deprecation warning).
        A model's class attributes (slots, directions, default) are its documented API.
        A lazy factory's target is not imported to answer: only its keywords count."""
        if key in self.meta:
            return self.meta[key]
        if isinstance(self.factory, Lazy) or not hasattr(self.factory, key):
            return default
        if not _declares(self.factory, key):
            once = (self.plugin, self.name, key)
            if once not in _warned:
                _warned.add(once)
                warnings.warn(
                    f"plugin '{self.plugin}': {self.kind} '{self.name}' sets `{key}` as an "
                    f"attribute of its factory; pass it to register(..., {key}=...) instead",
                    DeprecationWarning,
                    stacklevel=2,
                )
        return getattr(self.factory, key)

    @property
    def target(self) -> Callable[..., Any]:
        """The factory itself, a lazy one imported (a model's class, for its class methods)."""
        return self.factory.load() if isinstance(self.factory, Lazy) else self.factory

    def parse_options(self, values: Mapping[str, Any], where: str) -> BaseModel:
        """Validate a recipe section against this component's options model."""
        try:
            return self.options.model_validate(dict(values))
        except ValidationError as exc:
            raise CgfwError(_explain(exc, where, self)) from None

    def check_installed(self, where: str) -> None:
        """A factory's `requires = (package, extra)`: the optional package it imports, named
        before anything starts rather than deep inside a run."""
        package, extra = self.info("requires", (None, None))
        if package and importlib.util.find_spec(package) is None:
            raise CgfwError(
                f"{where}: {self.kind} '{self.name}' needs the {package} package, which is not "
                f'installed: pip install "cgfw[{extra}]"'
            )

    def build(self, values: Mapping[str, Any], *args: Any, where: str = "") -> Any:
        """Validate `values` and call the factory with the options and any extra arguments."""
        where = where or self.kind
        return self.factory(self.parse_options(values, where), *args)


def _explain(exc: ValidationError, where: str, component: Component) -> str:
    known = list(component.options.model_fields)
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            hint = did_you_mean(key, known)
            valid = ", ".join(known) or "none"
            lines.append(
                f"{where}.{key}: unknown option for {component.kind} '{component.name}'"
                f"{hint} (valid: {valid})"
            )
        elif err["type"] == "missing":
            lines.append(
                f"{where}.{key}: required by {component.kind} '{component.name}'; "
                f"add it to the recipe or --set {where}.{key}=..."
            )
        else:
            lines.append(f"{where}.{key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


@dataclass
class BrokenPlugin:
    """A plugin that failed to import or register; shown by `cgfw plugins`."""

    name: str
    error: str


@dataclass
class Registry:
    """All components by kind, plus what went wrong while loading plugins."""

    components: dict[str, dict[str, Component]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    # (kind, name) -> plugins that registered it more than once between them.
    conflicts: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)

    def add(self, component: Component) -> None:
        table = self.components[component.kind]
        existing = table.get(component.name)
        key = (component.kind, component.name)
        if existing is not None or key in self.conflicts:
            owners = self.conflicts.setdefault(key, [existing.plugin] if existing else [])
            owners.append(component.plugin)
            table.pop(component.name, None)
            return
        table[component.name] = component

    def drop_plugin(self, plugin: str) -> None:
        for table in self.components.values():
            for name in [n for n, c in table.items() if c.plugin == plugin]:
                del table[name]

    def register_function(self, kind: str, plugin: str) -> Callable[..., None]:
        """The `register` callable handed to a plugin's hook for `kind`."""

        def register(
            name: str,
            factory: Callable[..., Any],
            options: type[BaseModel] | None = None,
            summary: str = "",
            **meta: Any,
        ) -> None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"component names must be non-empty strings, got {name!r}")
            if not callable(factory):
                raise TypeError(f"factory for {kind} '{name}' is not callable")
            if options is not None and not (
                isinstance(options, type) and issubclass(options, BaseModel)
            ):
                raise TypeError(f"options for {kind} '{name}' must be a pydantic model class")
            unknown = sorted(set(meta) - set(METADATA))
            if unknown:
                raise TypeError(
                    f"{kind} '{name}': unknown register keyword(s) {', '.join(unknown)} "
                    f"(known: {', '.join(METADATA)})"
                )
            component = Component(kind, name, factory, options or NoOptions, summary, plugin, meta)
            self.add(component)

        return register

    def get(self, kind: str, name: str) -> Component:
        """The component `name` of `kind`, or an error naming the closest match."""
        check_kind(kind)
        table = self.components[kind]
        if name in table:
            return table[name]
        label = kind.replace("_", " ")
        owners = self.conflicts.get((kind, name))
        if owners:
            raise CgfwError(
                f"{label} '{name}' is registered by more than one plugin: "
                f"{', '.join(owners)}; uninstall or disable one (CGFW_DISABLE_PLUGINS)"
            )
        known = sorted(table)
        message = f"unknown {label} '{name}'{did_you_mean(name, known)} (known: {', '.join(known)})"
        for plugin in self.broken:
            message += f"\nnote: plugin '{plugin.name}' failed to load and may provide it: "
            message += plugin.error
        raise CgfwError(message)

    def defaults(self, kind: str) -> list[str]:
        """The names of `kind` whose factory is marked `default = True`: the metrics, trackers
        or launcher used when a recipe or command names none."""
        return [n for n in self.names(kind) if self.get(kind, n).info("default", False)]

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        """Registered names of `kind`, sorted, filtered by a glob like timm.list_models."""
        return sorted(n for n in self.components[kind] if fnmatch.fnmatch(n, pattern))


def _declares(factory: Any, key: str) -> bool:
    """Whether `key` is part of a class factory's declared interface (a cgfw.Model's
    ClassVars), rather than an attribute set on a function to be read back."""
    return isinstance(factory, type) and key in {
        "default",
        "slots",
        "directions",
        "optimizer_defaults",
        "network_channels",
        "reference",
    }
