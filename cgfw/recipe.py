"""Recipes: TOML files validated twice, first by the models below, then each component section by
its component's own options model, so typos fail before any tensor exists."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cgfw.errors import CgfwError, did_you_mean
from cgfw.registry import Registry


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


class DataSection(ComponentSection):
    name: str = "folder"


class GeneratorSection(ComponentSection):
    name: str = "resnet"


class DiscriminatorSection(ComponentSection):
    name: str = "patchgan"


class GanLossSection(ComponentSection):
    name: str = "lsgan"
    weight: float = Field(1.0, ge=0, description="0 trains the generators by reconstruction alone")


class CycleLossSection(ComponentSection):
    name: str = "l1"
    weight: float = Field(10.0, ge=0, description="lambda: absolute weight of each cycle term")
    forward: bool = Field(True, description="the A -> B -> A term (rec_a vs real_a)")
    backward: bool = Field(True, description="the B -> A -> B term (rec_b vs real_b)")


class IdentityLossSection(ComponentSection):
    name: str = "l1"
    weight: float = Field(
        0.5,
        ge=0,
        description="RELATIVE to losses.cycle.weight, as the authors' lambda_identity: the "
        "identity term's absolute weight is weight x losses.cycle.weight (0.5 x 10 = 5); "
        "0 skips the identity forward passes",
    )


class PairedLossSection(ComponentSection):
    name: str = "l1"
    weight: float = Field(
        0.0,
        ge=0,
        description="supervision from aligned pairs (not in the paper; the paired upper bound): "
        "weight x (L1(fake_b, real_b) + L1(fake_a, real_a)); needs a dataset that yields "
        "aligned training pairs, e.g. data.paired = true with the emoji dataset",
    )


class LossesSection(Strict):
    gan: GanLossSection = Field(default_factory=GanLossSection)
    cycle: CycleLossSection = Field(default_factory=CycleLossSection)
    identity: IdentityLossSection = Field(default_factory=IdentityLossSection)
    paired: PairedLossSection = Field(default_factory=PairedLossSection)


class BufferSection(ComponentSection):
    name: str = "image_pool"


class ScheduleSection(ComponentSection):
    name: str = "linear_decay"


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
    num_workers: int = Field(0, ge=0, description="data-loading worker processes")
    log_every: int = Field(50, ge=1, description="iterations between scalar logs")
    image_every: int = Field(1000, ge=1, description="iterations between sample grids")
    checkpoint_every: int = Field(5000, ge=1, description="iterations between checkpoints")
    samples: int = Field(4, ge=1, description="fixed held-out images shown in the sample grid")


class EvalSection(Strict):
    every: int | None = Field(
        None, ge=1, description="iterations between held-out evaluations (none: off)"
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["psnr", "ssim", "l1"], description="registered metric names"
    )
    split: Literal["test", "train"] = "test"
    batch_size: int = Field(8, ge=1)


class Recipe(Strict):
    extends: str | None = Field(
        None,
        description="start from another recipe (a bundled name, or a path relative to this "
        "file) and set only what differs; merged when the recipe is loaded",
    )
    run: RunSection = Field(default_factory=RunSection)
    data: DataSection = Field(default_factory=DataSection)
    generator: GeneratorSection = Field(default_factory=GeneratorSection)
    discriminator: DiscriminatorSection = Field(default_factory=DiscriminatorSection)
    losses: LossesSection = Field(default_factory=LossesSection)
    buffer: BufferSection = Field(default_factory=BufferSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    init: InitSection = Field(default_factory=InitSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)


# Component sections: dotted path -> (registry kind, keys the engine itself reads).
COMPONENT_SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "data": ("dataset", ()),
    "generator": ("generator", ()),
    "discriminator": ("discriminator", ()),
    "losses.gan": ("gan_loss", ("weight",)),
    "losses.cycle": ("reconstruction_loss", ("weight", "forward", "backward")),
    "losses.identity": ("reconstruction_loss", ("weight",)),
    "losses.paired": ("reconstruction_loss", ("weight",)),
    "buffer": ("buffer", ()),
    "schedule": ("schedule", ()),
}


@dataclass
class Resolved:
    """A validated recipe, where it came from, and each component section's parsed options."""

    recipe: Recipe
    source: str
    options: dict[str, BaseModel]

    def section(self, path: str) -> ComponentSection:
        node: Any = self.recipe
        for part in path.split("."):
            node = getattr(node, part)
        assert isinstance(node, ComponentSection)
        return node

    def to_dict(self) -> dict[str, Any]:
        """The complete recipe, every component option filled in with its default."""
        data = self.recipe.model_dump(exclude_none=True)
        for path, opts in self.options.items():
            node = data
            for part in path.split("."):
                node = node[part]
            node.update(opts.model_dump(exclude_none=True))
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


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    for text in overrides:
        parts, value = parse_override(text)
        try:
            set_dotted(data, ".".join(parts), value)
        except CgfwError as exc:
            raise CgfwError(f"--set {text!r}: {exc}") from None
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
    """Check the recipe's shape, then each component section against its component."""
    if data.get("extends") is not None:
        raise CgfwError(
            f"{source}: extends is read when a recipe file is loaded; write it at the top of "
            "the file rather than setting it with --set"
        )
    try:
        recipe = Recipe.model_validate(dict(data))
    except ValidationError as exc:
        raise CgfwError(_explain(exc, source)) from None
    resolved = Resolved(recipe, source, {})
    for path, (kind, _engine_keys) in COMPONENT_SECTIONS.items():
        section = resolved.section(path)
        try:
            component = registry.get(kind, section.name)
        except CgfwError as exc:
            raise CgfwError(f"{source}: {path}.name: {exc}") from None
        try:
            resolved.options[path] = component.parse_options(section.options(), path)
        except CgfwError as exc:
            raise CgfwError(f"{source}: {exc}") from None
    return resolved


def merge(base: dict[str, Any], changes: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`base` with `changes` laid over it, table by table. A component section that picks
    another component keeps only the engine's keys (weights), not the old one's options."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        path, old = f"{prefix}{key}", merged.get(key)
        if not (isinstance(value, dict) and isinstance(old, dict)):
            merged[key] = value
        elif path in COMPONENT_SECTIONS and value.get("name", _name(path, old)) != _name(path, old):
            engine = COMPONENT_SECTIONS[path][1]
            merged[key] = {k: v for k, v in old.items() if k in engine} | dict(value)
        else:
            merged[key] = merge(old, value, f"{path}.")
    return merged


def _name(path: str, section: Mapping[str, Any]) -> Any:
    """The component a section picks: its `name`, else the section model's default."""
    model: Any = Recipe
    for part in path.split("."):
        model = model.model_fields[part].annotation
    return section.get("name", model.model_fields["name"].default)


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
    return merge(read_recipe(base_path, registry, (*seen, path.resolve())), data)


def load(spec: str, registry: Registry, overrides: Iterable[str] = ()) -> Resolved:
    """Find, read, override and validate a recipe."""
    data, source = load_data(spec, registry, overrides)
    return validate(data, registry, source)


def load_data(
    spec: str, registry: Registry, overrides: Iterable[str] = ()
) -> tuple[dict[str, Any], str]:
    """The recipe's raw data with overrides applied, not yet validated (for ablations)."""
    path = find_recipe(spec, registry)
    return apply_overrides(read_recipe(path, registry), overrides), str(path)
