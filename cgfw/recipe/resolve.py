"""Recipes resolved: TOML files read, `extends` merged, overrides applied, then validated
twice, first by the schema (schema.py), then each component section by its component's own
options model, so typos fail before any tensor exists."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from cgfw.errors import CgfwError, did_you_mean
from cgfw.plugin.registry import Component, Registry
from cgfw.recipe import shape
from cgfw.recipe import trackers as tracking
from cgfw.recipe.channels import data_channels, with_channels
from cgfw.recipe.keys import get_dotted, parse_override, set_dotted
from cgfw.recipe.schema import ENGINE_SECTIONS, ENGINE_SLOTS, OptimizerSection, Recipe, Slot


def default_model(registry: Registry) -> Component:
    """The model of recipes without a [model] section: the one an installed plugin marks with
    `default = True` (cgfw's paper plugin marks cyclegan)."""
    marked = [registry.get("model", n) for n in registry.names("model")]
    marked = [c for c in marked if c.info("default", False)]
    if len(marked) == 1:
        return marked[0]
    known = ", ".join(registry.names("model")) or "none installed"
    if not marked:
        raise CgfwError(
            f"the recipe has no [model] section and no installed plugin supplies a default "
            f"model; add [model] name = ... (known: {known})"
        )
    owners = ", ".join(f"{c.name} ({c.plugin})" for c in marked)
    raise CgfwError(f"several plugins supply a default model: {owners}; name one in [model]")


def model_of(data: Mapping[str, Any], registry: Registry) -> Component:
    section = data.get("model")
    name = section.get("name") if isinstance(section, dict) else None
    if name is None:
        return default_model(registry)
    if not isinstance(name, str) or not name:
        raise CgfwError(shape.name_error(name, "model", registry))
    return registry.get("model", name)


def slots_of(model: Component) -> dict[str, Slot]:
    """The engine's slots, with the model's defaults for them, and the model's own."""
    declared: Mapping[str, Slot] = model.info("slots", {})
    return {**ENGINE_SLOTS, **declared}


@dataclass
class Resolved:
    """A validated recipe, where it came from, its model, and each slot's component (looked up
    once, here), parsed options and model keys."""

    recipe: Recipe
    source: str
    model: Component
    model_options: BaseModel
    slots: dict[str, Slot]
    components: dict[str, Component]
    options: dict[str, BaseModel]  # each slot's component options
    keys: dict[str, BaseModel]  # each slot's keys read by the model (weights)

    @property
    def model_class(self) -> Any:
        """The model's registered class (a cgfw.Model subclass), imported if it was registered
        lazily: for its class methods (terms, reference)."""
        return self.model.target

    def section(self, path: str) -> dict[str, Any]:
        """A section's keys as written (after extends and overrides)."""
        node = get_dotted(self.recipe.model_dump(exclude_none=True), path)
        return dict(node) if isinstance(node, dict) else {}

    def build(self, path: str, *args: Any) -> Any:
        """The slot's component, built from its options (and any extra arguments); a plugin's
        failure is named with the section and the plugin."""
        component = self.components[path]
        try:
            return component.factory(self.options[path], *args)
        except CgfwError:
            raise
        except Exception as exc:
            raise CgfwError(
                f"{path} '{component.name}' (plugin '{component.plugin}') failed to build: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        """The complete recipe: the model and every slot's component named, every option and
        key filled in with its default."""
        data = self.recipe.model_dump(exclude_none=True)
        data["model"] = {"name": self.model.name} | self.model_options.model_dump(exclude_none=True)
        for path, component in self.components.items():
            filled = {"name": component.name}
            if path in self.keys:
                filled |= self.keys[path].model_dump(exclude_none=True)
            filled |= self.options[path].model_dump(exclude_none=True)
            set_dotted(data, path, filled)
        return data

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def set_key(data: dict[str, Any], key: str, value: Any, registry: Registry) -> dict[str, Any]:
    """`data` with the dotted `key` set to `value`, as a recipe laid over it would set it: a
    section that picks another component (or a recipe that picks another model) starts afresh."""
    change: dict[str, Any] = {}
    set_dotted(change, key, value)
    shape.check_depth(change, f"'{key}'")  # before deepcopy recurses into it
    set_dotted(copy.deepcopy(data), key, value)  # a value on the way is an error named here
    return merge(data, change, registry)


def apply_overrides(
    data: dict[str, Any], overrides: Iterable[str], registry: Registry | None = None
) -> dict[str, Any]:
    """Each `--set KEY=VALUE` in turn. With the registry, `--set generator.name=X` starts that
    section afresh (as extends does), rather than keeping the old component's options."""
    for text in overrides:
        parts, value = parse_override(text)
        try:
            if registry is not None:
                data = set_key(data, ".".join(parts), value, registry)
            else:
                set_dotted(data, ".".join(parts), value)
        except CgfwError as exc:
            raise CgfwError(f"--set {text!r}: {exc}") from None
    return data


def set_values(
    data: dict[str, Any], values: Mapping[str, Any], registry: Registry
) -> dict[str, Any]:
    """Overrides given as Python values by dotted key (the Python API's): what `--set` does,
    without reading the values as TOML. A path becomes its string, as TOML would hold it."""
    for key, value in values.items():
        if not isinstance(key, str) or not all(p.strip() for p in key.split(".")):
            raise CgfwError(
                f"override {key!r}: expected a dotted recipe key, e.g. 'generator.n_blocks'"
            )
        plain = str(value) if isinstance(value, PurePath) else value
        try:
            data = set_key(data, key.strip(), plain, registry)
        except CgfwError as exc:
            raise CgfwError(f"overrides: {exc}") from None  # it names the key
    return data


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return shape.loads(path.read_text(encoding="utf-8"), str(path))
    except tomllib.TOMLDecodeError as exc:
        raise CgfwError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise CgfwError(f"{path}: not a text file; a recipe is a TOML file") from None
    except OSError as exc:
        raise CgfwError(f"{path}: cannot read recipe: {exc.strerror}") from None


def find_recipe(spec: str, registry: Registry) -> Path:
    """A path to a TOML file, or the name of a bundled recipe (`cgfw recipes` lists them)."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.suffix == ".toml" or "/" in spec or path.exists():
        hint = ""
        if path.stem in registry.names("recipe"):
            hint = f"; the bundled recipe '{path.stem}' can be run by name"
        raise CgfwError(f"recipe file not found: {spec}{hint}")
    return Path(str(registry.get("recipe", spec).factory(None)))


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = _known_keys(Recipe, err["loc"])
            lines.append(
                f"{source}: unknown key '{key}'{did_you_mean(str(err['loc'][-1]), known)}"
                f" (valid here: {', '.join(known)})"
            )
        else:
            lines.append(f"{source}: {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def validate(data: Mapping[str, Any], registry: Registry, source: str) -> Resolved:
    """Check the engine's sections, pick the model, then check every top-level key against the
    model's slots and each slot's section against its component."""
    if data.get("extends") is not None:
        raise CgfwError(
            f"{source}: extends is read when a recipe file is loaded; write it at the top of "
            "the file rather than setting it with --set"
        )
    shape.check_depth(data, source)
    shape.check_finite(data, source)
    try:
        model = model_of(data, registry)
    except CgfwError as exc:
        raise CgfwError(f"{source}: model.name: {exc}") from None
    slots = slots_of(model)
    shape.check_sections(data, {"model": Slot("model", model.name), **slots}, registry, source)
    try:
        recipe = Recipe.model_validate(dict(data))
    except ValidationError as exc:
        raise CgfwError(_explain(exc, source)) from None
    recipe.optimizer = _optimizer(data, model, source)
    _check_unknown_keys(dict(data), slots, model, source)
    try:
        model_options = model.parse_options(recipe.model.options(), "model")
    except CgfwError as exc:
        raise CgfwError(f"{source}: {exc}") from None
    try:
        tracking.resolve(recipe.run.trackers, registry)
    except CgfwError as exc:
        raise CgfwError(f"{source}: {exc}") from None
    resolved = Resolved(recipe, source, model, model_options, slots, {}, {}, {})
    raw = recipe.model_dump(exclude_none=True)
    for path, slot in slots.items():
        section = get_dotted(raw, path)
        section = dict(section) if isinstance(section, dict) else {}
        name = section.pop("name", None) or slot.default
        if name is None and slot.optional:
            continue
        if name is None:
            raise CgfwError(
                f"{source}: [{path}] name is required: model '{model.name}' has no default "
                f"{slot.kind} (known: {', '.join(registry.names(slot.kind)) or 'none'})"
            )
        try:
            component = registry.get(slot.kind, name)
        except CgfwError as exc:
            raise CgfwError(f"{source}: {path}.name: {exc}") from None
        key_names = set(slot.keys.model_fields) if slot.keys else set()
        try:
            if slot.keys is not None:
                values = {k: v for k, v in section.items() if k in key_names}
                resolved.keys[path] = _parse_keys(slot.keys, values, path, model.name)
        except CgfwError as exc:
            raise CgfwError(f"{source}: {exc}") from None
        options = {k: v for k, v in section.items() if k not in key_names}
        if path != "data":  # parsed first: its channel count decides the networks'
            channels = data_channels(resolved.options.get("data"))
            options = with_channels(options, path, slot.kind, component, channels, model, source)
        try:
            resolved.options[path] = component.parse_options(options, path)
        except CgfwError as exc:
            raise CgfwError(f"{source}: {exc}") from None
        resolved.components[path] = component
    _check_recomputed(recipe.train.activation_checkpointing, slots, model, source)
    _check_batchable(resolved)
    return resolved


def _check_batchable(resolved: Resolved) -> None:
    """Training images of different sizes cannot be stacked into a batch; a dataset whose
    options give them (their `unequal_sizes` says why, as the authors' scale_width and none
    modes do) trains at batch 1, as the authors train with them. Said now, not as a collate
    traceback in a worker."""
    why = getattr(resolved.options.get("data"), "unequal_sizes", None)
    batch = resolved.recipe.train.batch_size
    if isinstance(why, str) and batch > 1:
        raise CgfwError(
            f"{resolved.source}: {why}; they cannot be stacked into batches of "
            f"train.batch_size = {batch}: set train.batch_size = 1, as the authors train"
        )


def _check_recomputed(
    wanted: bool | list[str], slots: dict[str, Slot], model: Component, source: str
) -> None:
    """train.activation_checkpointing names network slots of this model, or is true / false."""
    networks = [p for p, s in slots.items() if s.kind in ("generator", "discriminator")]
    for path in wanted if isinstance(wanted, list) else []:
        if path not in networks:
            raise CgfwError(
                f"{source}: train.activation_checkpointing: '{path}' is no network slot of "
                f"model '{model.name}'{did_you_mean(path, networks)} (its networks: "
                f"{', '.join(networks) or 'none'}); or set it to true for all of them"
            )


def _optimizer(data: Mapping[str, Any], model: Component, source: str) -> OptimizerSection:
    """[optimizer]: the recipe's own values over the model's `optimizer_defaults` (a model
    that trains best at another learning rate says so once) over the engine's defaults."""
    defaults: Mapping[str, Any] = model.info("optimizer_defaults", {})
    given = data.get("optimizer")
    try:
        return OptimizerSection.model_validate({**defaults, **(given or {})})
    except ValidationError as exc:  # the recipe's values passed already: the model's are wrong
        lines = [
            f"{source}: optimizer.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got "
            f"{e.get('input')!r} from optimizer_defaults of model '{model.name}', plugin "
            f"'{model.plugin}')"
            for e in exc.errors()
        ]
        raise CgfwError("\n".join(lines)) from None


def _parse_keys(keys: type[BaseModel], values: dict[str, Any], path: str, model: str) -> BaseModel:
    try:
        return keys.model_validate(values)
    except ValidationError as exc:
        lines = [
            f"{path}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r}; "
            f"read by model '{model}')"
            for e in exc.errors()
        ]
        raise CgfwError("\n".join(lines)) from None


def _check_unknown_keys(
    data: dict[str, Any], slots: Mapping[str, Slot], model: Component, source: str
) -> None:
    """A top-level key that is neither the engine's nor on the way to one of the model's slots
    is a typo (or belongs to another model)."""
    valid = set(ENGINE_SECTIONS) | {p.split(".")[0] for p in slots}
    for key, value in data.items():
        if key not in valid:
            raise CgfwError(
                f"{source}: unknown key '{key}'{did_you_mean(key, sorted(valid))} (valid here "
                f"with model '{model.name}': {', '.join(sorted(valid))})"
            )
        below = sorted(p.split(".", 1)[1] for p in slots if p.startswith(f"{key}."))
        if below and isinstance(value, dict):  # a table of slots, e.g. [losses]
            for sub in value:
                if sub not in below:
                    raise CgfwError(
                        f"{source}: unknown key '{key}.{sub}'{did_you_mean(sub, below)} (valid "
                        f"here with model '{model.name}': {', '.join(below)})"
                    )


def merge(
    base: dict[str, Any], changes: Mapping[str, Any], registry: Registry | None = None
) -> dict[str, Any]:
    """`base` with `changes` laid over it, table by table. A slot's section that picks another
    component starts afresh: it keeps only the keys the model reads (weights) and the keys the
    change sets, not the old component's options."""
    merged = _merge(base, changes)
    slots = _slots_or_none(merged, registry) if registry is not None else {}
    if registry is not None and slots and slots != _slots_or_none(base, registry):
        _drop_other_models_sections(merged, slots, changes)
    for path, slot in slots.items():
        new = get_dotted(dict(changes), f"{path}.name")
        old = get_dotted(base, path)
        if new is None or not isinstance(old, dict) or new == old.get("name", slot.default):
            continue
        kept = set(slot.keys.model_fields) if slot.keys else set()
        given = get_dotted(dict(changes), path) or {}
        section = get_dotted(merged, path)
        set_dotted(merged, path, {k: v for k, v in section.items() if k in kept or k in given})
    return merged


def _drop_other_models_sections(
    merged: dict[str, Any], slots: Mapping[str, Slot], changes: Mapping[str, Any]
) -> None:
    """Another model: the old one's sections (a CycleGAN's buffer, losses.cycle) would not
    fit; keep the engine's, the new model's slots, and whatever the change itself sets."""
    for key in list(merged):
        if (
            key in ENGINE_SECTIONS
            or key in slots
            or (key in changes and key not in {p.split(".")[0] for p in slots})
        ):
            continue
        below = {p.split(".", 1)[1] for p in slots if p.startswith(f"{key}.")}
        given = changes.get(key, {})
        if not below or not isinstance(merged[key], dict):
            del merged[key]
            continue
        for sub in [s for s in merged[key] if s not in below and s not in given]:
            del merged[key][sub]


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        old = merged.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            merged[key] = _merge(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _slots_or_none(data: Mapping[str, Any], registry: Registry) -> dict[str, Slot]:
    try:
        return slots_of(model_of(data, registry))
    except CgfwError:
        return {}  # validation names the problem later


def read_recipe(path: Path, registry: Registry, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe file's data; `extends = "NAME_OR_PATH"` starts from another recipe (a bundled
    name, or a .toml path relative to this file) and changes only the keys this file sets."""
    data = read_toml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise CgfwError(f"{path}: extends must be a recipe name or path, got {parent!r}")
    if parent.endswith(".toml") or "/" in parent or "\\" in parent:
        base_path = path.parent / parent
        if not base_path.is_file():
            raise CgfwError(f"{path}: extends = {parent!r}: no such file next to this recipe")
    else:
        try:
            base_path = Path(str(registry.get("recipe", parent).factory(None)))
        except CgfwError as exc:
            raise CgfwError(f"{path}: extends = {parent!r}: {exc}") from None
    if base_path.resolve() in seen:
        raise CgfwError(f"{path}: extends = {parent!r} leads back to itself")
    return merge(read_recipe(base_path, registry, (*seen, path.resolve())), data, registry)


def load(spec: str, registry: Registry, overrides: Iterable[str] = ()) -> Resolved:
    """Find, read, override and validate a recipe."""
    path = find_recipe(spec, registry)
    return validate_overridden(read_recipe(path, registry), overrides, registry, str(path))


def validate_overridden(
    data: dict[str, Any], overrides: Iterable[str], registry: Registry, source: str
) -> Resolved:
    """`data` with each `--set KEY=VALUE` applied, validated; an error that an override
    brings in names the override (`--set 'generater.n_blocks=6': unknown key ...`), not the
    file, which may be fine as it is."""
    stages = [(source, data)]
    for text in overrides:
        stages.append((f"--set {text!r}", apply_overrides(stages[-1][1], [text], registry)))
    return validate_stages(stages, registry, source)


def validate_stages(
    stages: list[tuple[str, dict[str, Any]]], registry: Registry, source: str
) -> Resolved:
    """Validate the last of `stages`: a recipe's data as read from `source`, then after each
    change, labelled (an override). An error is blamed on the change after which the recipe
    has failed with just that error ever since; an error the file had all along stays the
    file's. Only on an error is more than the last stage validated (it is cheap: no tensors)."""
    try:
        return validate(stages[-1][1], registry, source)
    except CgfwError as exc:
        final = str(exc)
    blamed = 0
    for i in range(len(stages) - 2, -1, -1):
        if _error_of(stages[i][1], registry, source) != final:
            blamed = i + 1
            break
    if blamed == 0:
        raise CgfwError(final)
    prefix = f"{source}: "
    lines = [line.removeprefix(prefix) for line in final.splitlines()]
    raise CgfwError("\n".join(f"{stages[blamed][0]}: {line}" for line in lines))


def _error_of(data: dict[str, Any], registry: Registry, source: str) -> str | None:
    try:
        validate(data, registry, source)
    except CgfwError as exc:
        return str(exc)
    return None


def load_data(
    spec: str, registry: Registry, overrides: Iterable[str] = ()
) -> tuple[dict[str, Any], str]:
    """The recipe's raw data with overrides applied, not yet validated (for ablations)."""
    path = find_recipe(spec, registry)
    return apply_overrides(read_recipe(path, registry), overrides, registry), str(path)
