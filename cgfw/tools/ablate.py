"""Ablation studies: a base recipe and one-change variants, each run in its own directory."""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from cgfw import terminal
from cgfw.errors import CgfwError
from cgfw.plugin.loader import load_plugins
from cgfw.plugin.registry import Registry
from cgfw.recipe import (
    apply_overrides,
    get_dotted,
    load_data,
    parse_value,
    set_dotted,
    set_key,
    validate,
    validate_overridden,
)
from cgfw.recipe.shape import loads
from cgfw.session.launching import Batch, Launcher
from cgfw.store.layout import AblationDir, RunDir
from cgfw.store.provenance import new_run_dir


@dataclass
class Variant:
    label: str  # also its directory name
    data: dict[str, Any]


def apply(data: dict[str, Any], name: str, registry: Registry) -> dict[str, Any]:
    """A copy of recipe `data` with the named ablation's edits."""
    for key, value in registry.get("ablation", name).factory(None).items():
        data = set_key(data, key, value, registry)
    return data


def terms_left(data: dict[str, Any], name: str, registry: Registry) -> list[str]:
    """The loss terms a run of recipe `data` with the named ablation still trains (as its
    model reports them; empty for a model that does not say)."""
    resolved = validate(apply(data, name, registry), registry, name)
    return resolved.model_class.terms(resolved) or []


def stabilizers_left(data: dict[str, Any], name: str, registry: Registry) -> list[str]:
    """What else a run of recipe `data` with the named ablation keeps on: the components of the
    model's optional slots (a regulariser, an augmentation), spectral norm, the EMA."""
    resolved = validate(apply(data, name, registry), registry, name)
    kept = [
        f"{path} {resolved.components[path].name}"
        for path, slot in resolved.slots.items()
        if slot.optional and path in resolved.components
    ]
    full = resolved.to_dict()
    kept += [
        f"{path} spectral"
        for path in resolved.slots
        if get_dotted(full, f"{path}.norm") == "spectral"
    ]
    if resolved.recipe.train.ema:
        kept.append(f"ema {resolved.recipe.train.ema}")
    return kept


def _parse_vary(text: str) -> tuple[str, list[Any]]:
    key, sep, raw = text.partition("=")
    try:  # V1,V2 as a TOML array keeps lists and tables whole: betas=[0.9,0.99],[0.5,0.999]
        values: list[Any] = loads(f"v = [{raw}]", f"--vary {key.strip()[:40]}")["v"]
    except tomllib.TOMLDecodeError:  # unquoted words: losses.gan.name=lsgan,bce
        values = [parse_value(v) for v in raw.split(",") if v.strip()]
    if not sep or not key.strip() or not values:
        raise CgfwError(f"--vary {text!r}: expected KEY=V1,V2 e.g. --vary generator.n_blocks=6,9")
    return key.strip(), values


def _label(key: str, value: Any) -> str:
    """A directory name for a variant: no path separators or spaces."""
    text = (
        f"{key}={value}" if not isinstance(value, dict) else f"{key}={value.get('name', 'table')}"
    )
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")


def plan(
    base: dict[str, Any],
    disable: list[str],
    vary: list[str],
    registry: Registry,
    resolved_base: dict[str, Any],
    seeds: list[int] | None = None,
) -> list[Variant]:
    """The base run, one variant per --disable, and one per --vary value unlike the base's
    (`resolved_base` has every default filled in, to tell what the base's value is).

    Variants change one thing each (an ablation, not a grid search). With `seeds`, each
    variant runs once per seed, named LABEL-seedN (`cgfw compare` groups them again).
    """
    variants = [Variant("base", base)]
    for name in disable:
        variants.append(Variant(f"no-{name}", apply(base, name, registry)))
    for text in vary:
        key, values = _parse_vary(text)
        for value in values:
            if get_dotted(resolved_base, key) == value:
                continue
            variants.append(Variant(_label(key, value), set_key(base, key, value, registry)))
    labels = [v.label for v in variants]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise CgfwError(f"variants repeat: {', '.join(repeated)}; give each value once")
    if len(variants) == 1 and not seeds:
        raise CgfwError(
            "nothing to compare: give --disable NAME, --vary KEY=V1,V2 or --seeds S1,S2"
        )
    if not seeds:
        return variants
    seeded = []
    for variant in variants:
        for seed in seeds:
            data = copy.deepcopy(variant.data)
            set_dotted(data, "run.seed", seed)
            seeded.append(Variant(f"{variant.label}-seed{seed}", data))
    return seeded


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise CgfwError(f"--seeds {text!r}: expected distinct whole numbers, e.g. --seeds 0,1,2")
    return seeds


def parse_launcher_opts(texts: tuple[str, ...]) -> dict[str, Any]:
    """--launcher-opt partition=gpu,gpus_per_node=1 (repeatable) -> {"partition": "gpu", ...};
    values read as TOML, else kept as plain strings."""
    options: dict[str, Any] = {}
    for text in texts:
        # A comma starts a new option only before KEY=: lists and tables keep theirs.
        for item in (i for i in re.split(r",(?=\s*[A-Za-z_][\w.]*\s*=)", text) if i.strip()):
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise CgfwError(
                    f"--launcher-opt {text!r}: expected KEY=VALUE[,KEY=VALUE...], e.g. "
                    "--launcher-opt partition=gpu,gpus_per_node=1,timeout_min=720"
                )
            options[key.strip()] = parse_value(raw)
    return options


def default_launcher(registry: Registry) -> str:
    """The launcher a plugin marks `default = True` (cgfw's `local`)."""
    marked = registry.defaults("launcher")
    if not marked:
        raise CgfwError("no default launcher installed; name one with --launcher")
    return marked[0]


def build_launcher(name: str | None, texts: tuple[str, ...], registry: Registry) -> Launcher:
    """The launcher and its checked options, before any run directory is made."""
    component = registry.get("launcher", name or default_launcher(registry))
    component.check_installed(f"--launcher {component.name}")
    launcher: Launcher = component.build(parse_launcher_opts(texts), where="--launcher-opt")
    return launcher


def run_ablation(
    recipe: str,
    disable: Sequence[str] = (),
    vary: Sequence[str] = (),
    seeds: str | None = None,
    overrides: Sequence[str] = (),
    device: str | None = None,
    jobs: int = 1,
    launcher: str | None = None,
    launcher_opts: Sequence[str] = (),
    console: Console = terminal.console,
) -> tuple[Path, dict[str, dict[str, float]] | None]:
    """Plan RECIPE's variants, write each into its run directory under a new PARENT and launch
    them; returns PARENT and each run's final losses (None: a scheduler runs them later)."""
    loaded = load_plugins()
    chosen = build_launcher(launcher, tuple(launcher_opts), loaded.registry)
    read, source = load_data(recipe, loaded.registry)
    # Validated override by override first, so a --set typo is named as the override's.
    resolved_base = validate_overridden(read, overrides, loaded.registry, source).to_dict()
    data = apply_overrides(read, overrides, loaded.registry)
    seed_list = parse_seeds(seeds) if seeds is not None else None
    variants = plan(data, list(disable), list(vary), loaded.registry, resolved_base, seed_list)
    resolved = [validate(v.data, loaded.registry, f"{source} [{v.label}]") for v in variants]
    base = resolved[0].recipe.run
    parent = AblationDir(new_run_dir(Path(base.output_dir), f"ablate-{base.name}"))
    runs = {parent.run(v.label).path: res for v, res in zip(variants, resolved, strict=True)}
    for run_dir, res in runs.items():
        run_dir.mkdir()
        RunDir(run_dir).write_variant(res.to_toml())
    results = chosen.launch(Batch(parent.path, runs, loaded, device, jobs, console))
    if results is not None:
        parent.write_results(results)
    return parent.path, results


# The recipe an ablation without a `base` is shown on first, after its own plugin's.
TERMS_BASE = "paper_default"


def what_stays_on(name: str, registry: Registry, recipes: dict[str, dict[str, Any] | None]) -> str:
    """What an ablation leaves on, shown on its base recipe (`base = "..."` on its factory).
    Without one, on the first installed recipe it applies to: its own plugin's, then
    paper_default, then the others; trying paper_default alone flagged every plugin
    ablation of a plugin's own component as "does not apply" although it does, elsewhere."""
    component = registry.get("ablation", name)
    base = component.info("base")
    if base is not None:
        candidates = [base]
    else:
        names = registry.names("recipe")
        own = [r for r in names if registry.get("recipe", r).plugin == component.plugin]
        candidates = list(dict.fromkeys([*own, TERMS_BASE, *names]))
    tried = []
    for candidate in candidates:
        if candidate not in recipes:
            try:
                recipes[candidate] = load_data(candidate, registry, ())[0]
            except CgfwError:  # the bundled recipes may be disabled
                recipes[candidate] = None
        data = recipes[candidate]
        if data is None:
            continue
        tried.append(candidate)
        try:
            left = terms_left(data, name, registry)
            left += stabilizers_left(data, name, registry)
        except CgfwError:  # e.g. it edits a component this recipe does not use
            continue
        except Exception as exc:  # a plugin's broken ablation must not hide the list
            return f"(error: {type(exc).__name__}: {exc})"
        return f"{candidate}: " + ", ".join(left)
    if not tried:
        return "(its base recipe is not installed)"
    return f"(does not apply to {base})" if base else "(applies to no installed recipe)"
