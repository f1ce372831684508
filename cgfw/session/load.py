"""Loading a run: a run directory's (or a bare checkpoint's) generator rebuilt from its recipe
with its weights, for translate, export, eval and the Python API."""

from __future__ import annotations

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
from cgfw.store.layout import RunDir
from cgfw.terminal import console
from cgfw.training.model import build_network

DIRECTIONS = ("a2b", "b2a")


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


def _checkpoint_of(source: Path) -> tuple[checkpoint.Checkpoint, dict[str, Any] | None]:
    """The checkpoint to read (a run directory's newest good one) and, for a run directory,
    the recipe saved beside it."""
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
        warn = lambda w: console.print(f"[yellow]warning: {w}[/yellow]")  # noqa: E731
        return checkpoint.load_newest(run.checkpoints, warn), read_toml(saved)
    if source.is_file():
        return checkpoint.load(source), None
    raise CgfwError(f"{source}: no such run directory or checkpoint file")


def load_generator(source: Path, direction: str, raw: bool = False) -> Generator:
    """Rebuild the `direction` generator of a run directory or checkpoint file, weights loaded.

    A run directory's recipe.toml is used; a bare checkpoint carries its own recipe.
    """
    if direction not in DIRECTIONS:
        raise CgfwError(f"--direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
    ckpt, recipe_data = _checkpoint_of(source)
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
