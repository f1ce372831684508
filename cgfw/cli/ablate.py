"""Ablation studies: a base recipe and one-change variants, each run in its own directory."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch
from rich.console import Console

from cgfw.cli.compare import find_runs, group_seeds, render, table_rows
from cgfw.cli.console import SET_HELP, console, friendly, out
from cgfw.cli.launch import launch
from cgfw.errors import CgfwError
from cgfw.layout import RunDir
from cgfw.plugins import load_plugins
from cgfw.recipe import (
    Resolved,
    get_dotted,
    load_data,
    parse_value,
    set_dotted,
    set_key,
    validate,
)
from cgfw.registry import Registry
from cgfw.runs import new_run_dir


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
        values: list[Any] = tomllib.loads(f"v = [{raw}]")["v"]
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


def run_parallel(
    runs: dict[Path, Resolved], jobs: int, device: str | None, console: Console
) -> dict[str, dict[str, float]]:
    """Each run in its own `cgfw run` process, `jobs` at a time; a batch-1 CycleGAN leaves most
    of a large GPU idle, so several fit side by side. With several GPUs, runs take turns."""
    gpus = torch.cuda.device_count()
    pending = list(runs.items())
    active: list[tuple[Path, subprocess.Popen[bytes]]] = []
    results: dict[str, dict[str, float]] = {}
    n = 0
    while pending or active:
        while pending and len(active) < jobs:
            run_dir, resolved = pending.pop(0)
            recipe = run_dir / "variant.toml"
            recipe.write_text(resolved.to_toml(), encoding="utf-8")
            env = dict(os.environ)
            if not gpus and "OMP_NUM_THREADS" not in env:
                # Runs sharing the CPU split its cores instead of each claiming all of them.
                env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
            if gpus > 1:
                env["CUDA_VISIBLE_DEVICES"] = str(n % gpus)
            n += 1
            cmd = [sys.executable, "-m", "cgfw", "run", str(recipe), "--into", str(run_dir)]
            if device:
                cmd += ["--device", device]
            with open(run_dir / "log.txt", "wb") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            active.append((run_dir, proc))
            console.print(f"started {run_dir.name} (log: {run_dir / 'log.txt'})")
        time.sleep(0.2)
        for run_dir, proc in list(active):
            if proc.poll() is None:
                continue
            active.remove((run_dir, proc))
            losses = RunDir(run_dir).final_losses
            if proc.returncode == 0 and losses.is_file():
                results[run_dir.name] = json.loads(losses.read_text(encoding="utf-8"))
                console.print(f"finished {run_dir.name}")
            else:
                results[run_dir.name] = {}
                log_path = run_dir / "log.txt"
                console.print(
                    f"[red]{run_dir.name} failed (exit {proc.returncode}): {log_path}[/red]"
                )
    return {p.name: results[p.name] for p in runs}  # in the order the variants were planned


@click.command(name="ablate")
@click.argument("recipe", default="paper_default")
@click.option(
    "--disable",
    multiple=True,
    metavar="NAME",
    help="A named ablation (see `cgfw components ablation`); repeatable.",
)
@click.option(
    "--vary",
    multiple=True,
    metavar="KEY=V1,V2",
    help="One run per value, e.g. --vary losses.gan.name=lsgan,bce; repeatable.",
)
@click.option(
    "--seeds",
    metavar="S1,S2,...",
    help="Run every variant once per seed (run.seed), e.g. --seeds 0,1,2; "
    "`cgfw compare` then reports mean +- std over the seeds.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--device", help="auto, cpu, cuda or cuda:N (overrides train.device).")
@click.option(
    "--jobs",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Variants run at once, each in its own process (spread over the GPUs if several).",
)
@friendly
def ablate_cmd(
    recipe: str,
    disable: tuple[str, ...],
    vary: tuple[str, ...],
    seeds: str | None,
    overrides: tuple[str, ...],
    device: str | None,
    jobs: int,
) -> None:
    """Run RECIPE and one-change variants of it side by side, then compare them in a table.

    Each variant changes one thing: --disable identity, pool, gan, cycle, cycle_backward,
    cycle_forward (and any a plugin adds); --vary KEY=V1,V2 adds a run per value;
    --seeds 0,1,2 repeats every run per seed (RECIPE alone with --seeds is fine too).
    """
    loaded = load_plugins()
    data, source = load_data(recipe, loaded.registry, overrides)
    resolved_base = validate(data, loaded.registry, source).to_dict()
    seed_list = parse_seeds(seeds) if seeds is not None else None
    variants = plan(data, list(disable), list(vary), loaded.registry, resolved_base, seed_list)
    resolved = [validate(v.data, loaded.registry, f"{source} [{v.label}]") for v in variants]
    base = resolved[0].recipe.run
    parent = new_run_dir(Path(base.output_dir), f"ablate-{base.name}")
    dirs = {v.label: parent / v.label for v in variants}
    for d in dirs.values():
        d.mkdir()
    if jobs > 1:
        results = run_parallel(
            dict(zip(dirs.values(), resolved, strict=True)), jobs, device, console
        )
    else:
        results = {}
        for label, res in zip(dirs, resolved, strict=True):
            console.rule(label)
            results[label] = launch(res, loaded, dirs[label], console, device).final_losses
    (parent / "ablation.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    # The same table as `cgfw compare PARENT`: what differs, then the results (final losses, the
    # mean over the last log window; held-out metrics once `cgfw eval` has scored the runs).
    out.print(render(*table_rows(*group_seeds(find_runs([parent])), None, False), "table"))
    failed = [label for label, losses in results.items() if not losses]
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/red] (their log.txt says why)")
    console.print(f"after `cgfw eval` on each run, `cgfw compare {parent}` adds the metrics")
