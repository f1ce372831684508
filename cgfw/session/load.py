"""Loading a run: a run directory's (or a bare checkpoint's, or a model folder's) generator
rebuilt from its recipe with its weights, for translate, export, eval and the Python API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cgfw.errors import CgfwError
from cgfw.plugin.loader import load_plugins
from cgfw.plugin.registry import Registry
from cgfw.recipe import Resolved, read_toml, validate
from cgfw.recipe.channels import data_channels
from cgfw.store import checkpoint
from cgfw.store.folder import EMA, BadFolder, FolderConfig, ModelFolder
from cgfw.store.layout import RunDir
from cgfw.terminal import console
from cgfw.training.model import build_network

DIRECTIONS = ("a2b", "b2a")
# The checkpoints of a run directory translate, eval, export and cgfw.load read: its latest
# (the default), the best by train.keep_best, or iter_N, kept by train.keep_every.
LATEST, BEST = "latest", "best"


class OneSided(CgfwError):
    """The run's model does not learn the direction asked for."""


@dataclass
class Generator:
    """A generator rebuilt from a run, in eval mode on the CPU, and where it came from."""

    net: nn.Module
    resolved: Resolved
    registry: Registry
    checkpoint: Path
    direction: str
    iteration: int  # of the checkpoint (0 when it does not say)
    network: str = "g_ab"  # the model's name for it (g_ab, g_ba)
    slot: str = "generator"  # the recipe section it is built from
    averaged: bool = False  # the train.ema weights rather than the trained ones

    @property
    def crop_size(self) -> int | None:
        size = getattr(self.resolved.options.get("data"), "crop_size", None)
        return size if isinstance(size, int) else None

    @property
    def channels(self) -> int:
        """The run's data.channels: what the generator takes and gives."""
        return data_channels(self.resolved.options.get("data"))


def chosen(run: RunDir, which: str) -> Path | None:
    """The file `which` (best, latest or iter_N) names in `run`; None for latest, read with
    load_newest's fallback to previous.pt. One that is not there is an error listing those that
    are."""
    if which == LATEST:
        return None
    number = re.fullmatch(r"iter_(\d+)", which)
    if which == BEST:
        path, keeper = run.best_checkpoint, "train.keep_best"
    elif number:
        path, keeper = run.kept(int(number[1])), "train.keep_every"
    else:
        raise CgfwError(
            f"checkpoint {which!r}: use {LATEST}, {BEST} or iter_N (an iteration "
            f"train.keep_every kept); {run.path} has {', '.join(present(run)) or 'none yet'}"
        )
    if not path.is_file():
        raise CgfwError(
            f"checkpoint {which!r}: {run.path} has no {path.relative_to(run.path)} ({keeper} "
            f"keeps those); it has {', '.join(present(run)) or 'no checkpoint yet'}"
        )
    return path


def present(run: RunDir) -> list[str]:
    """The checkpoint names `chosen` takes that `run` has: latest, best, iter_4000, ..."""
    latest = any((run.checkpoints / n).is_file() for n in (checkpoint.LATEST, checkpoint.PREVIOUS))
    return (
        ([LATEST] if latest else [])
        + ([BEST] if run.best_checkpoint.is_file() else [])
        + [f"iter_{n}" for n in run.kept_iterations()]
    )


def _checkpoint_of(
    source: Path, which: str = LATEST
) -> tuple[checkpoint.Checkpoint, dict[str, Any] | None]:
    """The checkpoint to read (a run directory's `which`: by default its newest good one) and,
    for a run directory, the recipe saved beside it."""
    if source.is_file() and which != LATEST:
        raise CgfwError(
            f"checkpoint {which!r} picks a file of a run directory, and {source} is a "
            "checkpoint file: give its run directory, or the file you mean"
        )
    if source.is_dir():
        run = RunDir(source)
        saved = run.recipe
        if not saved.is_file():
            raise CgfwError(
                f"{source}: not a run directory (no recipe.toml); give a run directory made by "
                "`cgfw run` or a checkpoint file (RUN_DIR/checkpoints/latest.pt)"
            )
        try:
            checkpoint.latest_in(run.checkpoints)
        except CgfwError:
            raise CgfwError(
                f"{source}: no checkpoint yet in {run.checkpoints}; let the run reach "
                "train.checkpoint_every (or finish) first"
            ) from None
        path = chosen(run, which)
        if path is not None:
            return checkpoint.load(path), read_toml(saved)
        warn = lambda w: console.print(f"[yellow]warning: {w}[/yellow]")  # noqa: E731
        return checkpoint.load_newest(run.checkpoints, warn), read_toml(saved)
    if source.is_file():
        return checkpoint.load(source), None
    raise CgfwError(f"{source}: no such run directory or checkpoint file")


def load_generator(
    source: Path, direction: str, raw: bool = False, which: str = LATEST
) -> Generator:
    """Rebuild the `direction` generator of a run directory or checkpoint file, weights loaded;
    of a run directory's `which` checkpoint (latest, best or iter_N).

    A run directory's recipe.toml is used; a bare checkpoint carries its own recipe.
    """
    if direction not in DIRECTIONS:
        raise CgfwError(f"--direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
    if ModelFolder(source).is_folder():
        return _folder_generator(ModelFolder(source), direction, raw, which)
    ckpt, recipe_data = _checkpoint_of(source, which)
    path = ckpt.path or source
    where = str(RunDir(source).recipe) if recipe_data is not None else f"{path} (recipe)"
    if recipe_data is None:
        recipe_data = ckpt.recipe
    registry = load_plugins().registry
    resolved = validate(recipe_data, registry, where)
    learned = resolved.model.info("directions", {})
    if direction not in learned:
        raise OneSided(
            f"--direction {direction}: model '{resolved.model.name}' learns "
            f"{', '.join(learned) or 'no direction'} only (it is one-sided); use "
            f"--direction {next(iter(learned), 'a2b')}"
        )
    network, slot = learned[direction]
    run_dir = RunDir.holding(path)
    imported = run_dir.imported_networks()
    if imported is not None and network not in imported and ckpt.iteration == 0:
        # An import that brought no weights for this direction (a pretrained model is one
        # generator, A -> B): it would translate with random weights. Training fixes that.
        others = [d for d, (n, _) in learned.items() if n in imported]
        raise OneSided(
            f"--direction {direction}: {source} was imported without {network} weights "
            f"(it has {', '.join(sorted(imported))}), so {direction} is untrained: the authors' "
            "pretrained models are one generator each, A -> B; "
            + (f"use --direction {others[0]}, or " if others else "")
            + f"train it first (cgfw run --resume {run_dir.path})"
        )
    # train.ema: the moving average is what the run is used with, unless --raw
    averaged = not raw and ckpt.has_average(network)
    weights = ckpt.weights(network, averaged)
    net = build_network(resolved, slot)
    checkpoint.refuse_old_conv_biases(path, {network: weights}, {network: net})
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CgfwError(
            f"{path}: the weights do not fit the generator of {where} ({first}); was the "
            "recipe edited after training?"
        ) from None
    net.eval()  # dropout off, batch norm on its running statistics
    return Generator(
        net, resolved, registry, path, direction, ckpt.iteration, network, slot, averaged
    )


def open_folder(folder: ModelFolder, which: str = LATEST, raw: bool = False) -> FolderConfig:
    """The config of a model folder, checked, and refusing the choices a folder cannot honour:
    it holds one set of weights, saved from one checkpoint, averaged or not."""
    config = folder.read_config()
    if which != LATEST:
        raise CgfwError(
            f"checkpoint {which!r}: {folder.path} is a model folder, holding the weights of one "
            f"checkpoint ({config.checkpoint}, iteration {config.iteration}); write one from "
            f"another with `cgfw save-pretrained RUN_DIR OUT --checkpoint {which}`"
        )
    if raw and config.weights == EMA:
        raise CgfwError(
            f"--raw: {folder.path} holds train.ema's moving average only; write the trained "
            "weights with `cgfw save-pretrained RUN_DIR OUT --raw`"
        )
    return config


def _folder_generator(folder: ModelFolder, direction: str, raw: bool, which: str) -> Generator:
    """A model folder's `direction` generator: built from its recipe.toml, its weights read from
    the safetensors file its config.json names for it."""
    config = open_folder(folder, which, raw)
    if not folder.recipe.is_file():
        raise BadFolder(f"{folder.recipe}: missing; a model folder needs its recipe")
    registry = load_plugins().registry
    resolved = validate(read_toml(folder.recipe), registry, str(folder.recipe))
    learned = resolved.model.info("directions", {})
    if direction not in learned:
        raise OneSided(
            f"--direction {direction}: model '{resolved.model.name}' learns "
            f"{', '.join(learned) or 'no direction'} only (it is one-sided); use "
            f"--direction {next(iter(learned), 'a2b')}"
        )
    network, slot = learned[direction]
    entry = config.generators.get(direction)
    if entry is None or entry.network != network:
        raise BadFolder(
            f"{folder.config}: names no {direction} generator '{network}' (it names "
            f"{', '.join(f'{d}: {g.network}' for d, g in config.generators.items())}), which "
            f"the model '{resolved.model.name}' of {folder.recipe} needs"
        )
    path = folder.path / entry.file
    if not path.is_file():
        raise BadFolder(f"{path}: missing; {folder.config} names it as the {direction} generator")
    weights = _safetensors(path)
    net = build_network(resolved, slot)
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[1:3])
        raise BadFolder(
            f"{path}: the weights do not fit the generator of {folder.recipe} ({first} "
            f"{detail}); was one of the two files replaced or edited?"
        ) from None
    net.eval()
    averaged = config.weights == EMA
    return Generator(
        net, resolved, registry, path, direction, config.iteration, network, slot, averaged
    )


def _safetensors(path: Path) -> dict[str, Any]:
    """A safetensors file's tensors; its format parses no code, so a foreign file is refused
    with its parser's reason."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CgfwError(
            f"{path}: reading a model folder needs safetensors (not installed): "
            "pip install 'cgfw[hub]' (or 'cgfw[export]')"
        ) from None
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors' own error type: a truncated or foreign file
        lines = str(exc).strip().splitlines()
        raise BadFolder(
            f"{path}: not a readable safetensors file ({type(exc).__name__}: "
            f"{lines[0] if lines else 'no detail'})"
        ) from None
