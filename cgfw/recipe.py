"""Recipes: TOML files validated twice, first by the models below, then each component section by
its component's own options model, so typos fail before any tensor exists."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cgfw import tracking
from cgfw.channels import fill_network_channels
from cgfw.errors import CgfwError, did_you_mean
from cgfw.registry import Component, Registry


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentSection(BaseModel):
    """A section whose `name` picks a registered component; its other keys are that component's
    options and are validated by the component's own model."""

    model_config = ConfigDict(extra="allow")
    name: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RunSection(Strict):
    name: str = Field("run", description="run directories are named NAME-TIMESTAMP")
    seed: int = 0
    output_dir: str = "runs"
    description: str = ""
    trackers: list[str | dict[str, Any]] | None = Field(
        None,
        description='where scalars, sample grids and metrics go, e.g. ["tensorboard", '
        '"mlflow"] or tables with options ({name = "mlflow", uri = "sqlite:///runs/mlflow.db"}); '
        "left out: the default trackers (TensorBoard)",
    )


class DefaultedSection(ComponentSection):
    """A section whose `name` may be left out: [model] (then the model an installed plugin
    marks as the default, cgfw's paper plugin's cyclegan), [data] and [schedule] (then the
    model's default component)."""

    name: str | None = None  # type: ignore[assignment]


class InitSection(Strict):
    name: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    gain: float = Field(0.02, gt=0, description="std for normal, gain for xavier / orthogonal")


class OptimizerSection(Strict):
    lr: float = Field(
        2e-4, gt=0, description="Adam learning rate for generators and discriminators"
    )
    betas: tuple[float, float] = (0.5, 0.999)


class TrainSection(Strict):
    epochs: int = Field(200, ge=1, description="an epoch is one pass over the dataset's length")
    max_iters: int | None = Field(None, ge=1, description="stop after this many iterations")
    batch_size: int = Field(1, ge=1, description="global: split between torchrun processes")
    device: str = Field("auto", description="auto (cuda if present), cpu, cuda, cuda:N")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="autocast dtype; auto: bf16 on CUDA, fp32 on CPU"
    )
    # channels_last made the step slower on an H100 at 256 px, batch 1; compile = "default" made
    # it faster inside the CUDA graph (42 vs 33 it/s), and is off until whole compiled runs have
    # passed the GPU tests (docs/benchmarks.md).
    channels_last: bool = Field(False, description="NHWC memory layout for networks and images")
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = Field(
        "off",
        description="torch.compile mode for the networks; default: fused kernels, replayed "
        "inside train.cuda_graph (fastest measured on an H100); reduce-overhead and "
        "max-autotune capture CUDA graphs of their own instead",
    )
    cuda_graph: bool | Literal["auto"] = Field(
        "auto",
        description="replay each iteration as one captured CUDA graph; auto: on for CUDA when "
        "the run allows it (fp32/bf16, one process, no channels_last, compile off or default)",
    )
    stack_calls: bool = Field(
        True,
        description="run a network once on same-sized inputs stacked along the batch (a "
        "generator's translation and identity images, a discriminator's real and fake ones); "
        "false: every call apart, in the authors' order, as their code does",
    )
    ema: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="decay of an exponential moving average of the generators (e.g. 0.999), "
        "which samples, [eval], eval, translate and export then use (--raw: the trained "
        "weights); 0: off",
    )
    num_workers: int = Field(0, ge=0, description="data-loading worker processes")
    log_every: int = Field(50, ge=1, description="iterations between scalar logs")
    image_every: int = Field(1000, ge=1, description="iterations between sample grids")
    checkpoint_every: int = Field(5000, ge=1, description="iterations between checkpoints")
    samples: int = Field(4, ge=1, description="fixed held-out images shown in the sample grid")


class EvalSection(Strict):
    every: int | None = Field(
        None, ge=1, description="iterations between held-out evaluations (none: off)"
    )
    metrics: list[str] | None = Field(
        None,
        description="registered metric names; none: the metrics their plugins mark as the "
        "default (cgfw's paper plugin: psnr, ssim, l1)",
    )
    split: Literal["test", "train"] = "test"
    batch_size: int = Field(8, ge=1)


class Recipe(BaseModel):
    """The engine's sections. Every other top-level key belongs to the model's slots (for
    cyclegan: generator, discriminator, losses, buffer) and is checked against them."""

    model_config = ConfigDict(extra="allow")
    extends: str | None = Field(
        None,
        description="start from another recipe (a bundled name, or a path relative to this "
        "file) and set only what differs; merged when the recipe is loaded",
    )
    run: RunSection = Field(default_factory=RunSection)
    model: DefaultedSection = Field(default_factory=DefaultedSection)
    data: DefaultedSection = Field(default_factory=DefaultedSection)
    schedule: DefaultedSection = Field(default_factory=DefaultedSection)
    init: InitSection = Field(default_factory=InitSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)


@dataclass(frozen=True)
class Slot:
    """A recipe section through which a model asks for a component: the registry kind that
    fills it, the component used when the section names none, and the keys the model itself
    reads from the section (a loss weight), validated by `keys`; every other key of the
    section is the component's option. An `optional` slot without a section (or one set to an
    empty table) has no component: the model goes without (a regulariser, an augmentation)."""

    kind: str
    default: str | None = None
    keys: type[BaseModel] | None = None
    optional: bool = False


# What every model gets, whatever it declares: its data and its learning-rate schedule.
ENGINE_SLOTS: dict[str, Slot] = {"data": Slot("dataset"), "schedule": Slot("schedule")}
ENGINE_SECTIONS = tuple(Recipe.model_fields)


def default_model(registry: Registry) -> Component:
    """The model of recipes without a [model] section: the one an installed plugin marks with
    `default = True` (cgfw's paper plugin marks cyclegan)."""
    marked = [registry.get("model", n) for n in registry.names("model")]
    marked = [c for c in marked if getattr(c.factory, "default", False)]
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
    if not isinstance(name, str):
        raise CgfwError(f"model.name must be a string, got {name!r}")
    return registry.get("model", name)


def slots_of(model: Component) -> dict[str, Slot]:
    """The engine's slots, with the model's defaults for them, and the model's own."""
    declared: Mapping[str, Slot] = getattr(model.factory, "slots", {})
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
        """The model's registered class (a cgfw.Model subclass): its slots, directions."""
        return self.model.factory

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


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=VALUE` -> (["a", "b"], value); VALUE is read as TOML, else kept as a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(p.strip() for p in parts):
        raise CgfwError(
            f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set generator.n_blocks=6"
        )
    return [p.strip() for p in parts], parse_value(raw)


def parse_value(raw: str) -> Any:
    """A command-line value read as TOML, else kept as a plain string (data.root=/tmp/h2z)."""
    try:
        return tomllib.loads(f"v = {raw.strip()}")["v"]
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


def set_key(data: dict[str, Any], key: str, value: Any, registry: Registry) -> dict[str, Any]:
    """`data` with the dotted `key` set to `value`, as a recipe laid over it would set it: a
    section that picks another component (or a recipe that picks another model) starts afresh."""
    change: dict[str, Any] = {}
    set_dotted(change, key, value)
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
        return tomllib.loads(path.read_text(encoding="utf-8"))
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
    try:
        recipe = Recipe.model_validate(dict(data))
    except ValidationError as exc:
        raise CgfwError(_explain(exc, source)) from None
    try:
        model = model_of(data, registry)
    except CgfwError as exc:
        raise CgfwError(f"{source}: model.name: {exc}") from None
    recipe.optimizer = _optimizer(data, model, source)
    slots = slots_of(model)
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
            options = {k: v for k, v in section.items() if k not in key_names}
            resolved.options[path] = component.parse_options(options, path)
        except CgfwError as exc:
            raise CgfwError(f"{source}: {exc}") from None
        resolved.components[path] = component
    # After every slot: a network's channel counts follow the data section's.
    fill_network_channels(resolved)
    return resolved


def _optimizer(data: Mapping[str, Any], model: Component, source: str) -> OptimizerSection:
    """[optimizer]: the recipe's own values over the model's `optimizer_defaults` (a model
    that trains best at another learning rate says so once) over the engine's defaults."""
    defaults: Mapping[str, Any] = getattr(model.factory, "optimizer_defaults", {})
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
