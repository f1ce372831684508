"""Resuming a run: what a checkpoint holds, and what a resumed run may change (the length of
training and how it is logged, not what is being trained: anything else would silently mix two
experiments in one run directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cgfw.errors import CgfwError
from cgfw.plugin.registry import Registry
from cgfw.recipe import Resolved, validate
from cgfw.recipe.keys import flatten
from cgfw.store import checkpoint
from cgfw.store.checkpoint import Checkpoint
from cgfw.store.layout import RunDir
from cgfw.training.ema import EMA
from cgfw.training.model import Model

# Keys a resume may change freely (prefixes end with a dot).
SAFE = (
    "run.description",
    "run.trackers",
    "train.max_iters",
    "train.epochs",
    "train.device",
    "train.num_workers",
    "train.log_every",
    "train.image_every",
    "train.checkpoint_every",
    "train.keep_every",  # which checkpoints stay on disk, not what is trained
    "train.keep_best",
    "train.samples",
    "train.precision",
    "train.channels_last",
    "train.compile",
    "train.cuda_graph",
    "schedule.",  # e.g. a longer decay
    "eval.",  # what is measured along the way, not what is trained
    "alarms.",
    "train.activation_checkpointing",  # memory against time: the same losses and weights
)


def differences(saved: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    old_flat, new_flat = flatten(saved), flatten(new)
    keys = sorted(set(old_flat) | set(new_flat))
    return [
        (k, old_flat.get(k), new_flat.get(k)) for k in keys if old_flat.get(k) != new_flat.get(k)
    ]


def check(saved: dict[str, Any], new: dict[str, Any], allow_changes: bool) -> list[str]:
    """Refuse unsafe changes (unless allowed); return a line per change that goes through."""
    changes = differences(saved, new)
    unsafe = [
        c
        for c in changes
        if not any(c[0] == s or (s.endswith(".") and c[0].startswith(s)) for s in SAFE)
    ]
    if unsafe and not allow_changes:
        lines = "\n".join(f"  {k}: {old!r} -> {new_value!r}" for k, old, new_value in unsafe)
        raise CgfwError(
            "the recipe differs from the one this run was trained with:\n"
            f"{lines}\nresuming would mix two experiments; start a new run, or pass "
            "--allow-changes if you mean it"
        )
    return [f"{k}: {old!r} -> {new_value!r}" for k, old, new_value in changes]


def as_resolved_now(recipe: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """A saved recipe with what later versions added filled in with its default (a [model]
    section, a new option), so a run saved before is compared like for like: only what the
    user changes counts as a change. A recipe that no longer validates is compared as saved."""
    try:
        return validate(recipe, registry, "the saved recipe").to_dict()
    except CgfwError:
        return recipe


def state(t: Any, log: dict[str, Any]) -> Checkpoint:
    """What a checkpoint holds: where the run stands, its random state, the model's state, the
    recipe it was trained with and the open log window (`log`). `t` is the trainer's
    `Training`."""
    device = t.m.rt.device
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return Checkpoint(
        iteration=t.iteration,
        epoch=t.epoch,
        rng=rng,
        model=t.m.state_dict(),
        recipe=t.resolved.to_dict(),
        ema=t.ema.state_dict() if t.ema is not None else None,
        log=log,
    )


def restore(
    m: Model,
    path: Path,
    resolved: Resolved,
    registry: Registry,
    total: int,
    allow_changes: bool,
    console: Console,
    ema: EMA | None = None,
) -> Checkpoint:
    """Load the checkpoint in the folder `path` (its latest, or its previous one when the
    latest is damaged) or the file `path` into a built (and set up) model; returns it. Refuses
    unsafe recipe changes and a run that is already done; restores the random state."""
    device = m.rt.device
    if path.is_dir():
        warn = lambda w: console.print(f"[yellow]{w}[/yellow]")  # noqa: E731
        saved = checkpoint.load_newest(path, warn, device)
    else:
        saved = checkpoint.load(path, map_location=device)
    path = saved.path or path
    for change in check(as_resolved_now(saved.recipe, registry), resolved.to_dict(), allow_changes):
        console.print(f"resuming with a change: {change}")
    checkpoint.refuse_old_conv_biases(path, saved.model.get("networks", {}), m.networks)
    try:
        m.load_state_dict(saved.model)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CgfwError(f"{path}: does not fit this recipe's networks ({first})") from None
    if ema is not None and saved.ema is not None:  # a run that had no EMA starts it from here
        ema.load_state_dict(saved.ema)
    iteration = saved.iteration
    finished = RunDir.holding(path).final_losses.is_file()
    if iteration > total or (iteration == total and finished):
        raise CgfwError(
            f"{path}: the run is already at iteration {iteration} of {total}; "
            f"raise train.max_iters or train.epochs to train further"
        )
    # Random states are CPU byte tensors, whatever device the checkpoint was mapped to.
    if "torch" in saved.rng:
        torch.set_rng_state(saved.rng["torch"].cpu())
    if device.type == "cuda" and saved.rng.get("cuda") is not None:
        torch.cuda.set_rng_state(saved.rng["cuda"].cpu(), device)
    if iteration == total:  # stopped after its last checkpoint, before its final losses
        console.print(f"{path}: the run reached iteration {total}; finishing it")
    else:
        console.print(f"resumed from {path} at iteration {iteration}")
    return saved
