"""Start or resume one run: its directory, recorded recipe and provenance, then training.
`train_run` is what `cgfw run` and the Python API (`cgfw.train`) both call."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cgfw.errors import CgfwError, TrainingStopped
from cgfw.plugin.loader import Loaded, load_plugins
from cgfw.recipe import Resolved, apply_overrides, load_data, validate
from cgfw.store import checkpoint
from cgfw.store.checkpoint import Checkpoint
from cgfw.store.layout import RunDir
from cgfw.store.provenance import locked, new_run_dir, provenance
from cgfw.terminal import QUIET
from cgfw.training import distributed
from cgfw.training.distributed import Group, device_for
from cgfw.training.loop import RunResult, resolve_device, train
from cgfw.training.model import Model, build_model


def train_run(
    resolved: Resolved,
    loaded: Loaded,
    console: Console,
    device: str | None = None,
    resume_dir: Path | None = None,
    allow_changes: bool = False,
    into: Path | None = None,
) -> RunResult:
    """A new run, or a resumed one; under torchrun every process joins and the main one names
    the directory and speaks on `console`. A new run that fails before its first checkpoint
    leaves no directory behind (unless it was given one, `into`: an ablation's)."""
    r = resolved.recipe
    group = distributed.setup(device or r.train.device)
    speaker = console if group.main else QUIET
    new = resume_dir is None
    run_dir = resume_dir or into
    try:
        if run_dir is None:
            run_dir = group.share(
                new_run_dir(Path(r.run.output_dir), r.run.name) if group.main else None
            )
        assert run_dir is not None
        result = launch(
            resolved,
            loaded,
            run_dir,
            speaker,
            device,
            resume=not new,
            group=group,
            allow_changes=allow_changes,
        )
    except BaseException as exc:  # a mistake, a bug, Ctrl-C: no empty run directory stays
        created = new and into is None and group.main and run_dir is not None  # made here
        checkpoints = RunDir(run_dir).checkpoints if created else None  # type: ignore[arg-type]
        untrained = checkpoints is not None and not any(checkpoints.glob("*.pt"))
        if untrained and not isinstance(exc, TrainingStopped):
            shutil.rmtree(run_dir, ignore_errors=True)  # type: ignore[arg-type]
        raise
    finally:
        group.close()
    speaker.print(f"[green]done[/green]: {result.iterations} iterations in {result.run_dir}")
    if RunDir(result.run_dir).events():  # when a TensorBoard tracker wrote there
        speaker.print(f"TensorBoard: tensorboard --logdir {r.run.output_dir}")
    return result


def launch(
    resolved: Resolved,
    loaded: Loaded,
    run_dir: Path,
    console: Console,
    device_name: str | None = None,
    resume: bool = False,
    group: Group | None = None,
    allow_changes: bool = False,
) -> RunResult:
    group = group or Group()
    named = resolve_device(device_name, "--device") if device_name else None
    device = device_for(group, named or resolve_device(resolved.recipe.train.device))
    if not group.main:
        latest = resume_from(run_dir, resume)
        return train(resolved, loaded, run_dir, device, console, latest, group, allow_changes)
    with locked(run_dir):
        run = RunDir(run_dir)
        latest = resume_from(run_dir, resume)
        meta = provenance(device, loaded.plugins) | {"processes": group.world}

        def started() -> None:
            """A resume is recorded once its checkpoint is accepted (a refused one leaves no
            record); the run goes on with the accepted changes (say, a longer schedule)."""
            if resume:
                run.write_resume_record(meta)
                run.write_recipe(resolved.to_toml())

        if not resume:
            # Written before any tensor exists, so even a crashed run can be redone exactly.
            run.write_recipe(resolved.to_toml())
            run.write_provenance(meta)
        console.print(f"run directory: {run_dir}  (device {device}, {group.world} process(es))")
        return train(
            resolved, loaded, run_dir, device, console, latest, group, allow_changes, started
        )


def resume_from(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoints folder to resume from (restore takes its newest good checkpoint)."""
    if not resume:
        return None
    checkpoint.latest_in(RunDir(run_dir).checkpoints)  # one clear error when there is none
    return RunDir(run_dir).checkpoints


def resolve_recipe(
    spec: str,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
    overrides: Sequence[str] = (),
    loaded: Loaded | None = None,
) -> Resolved:
    """A recipe (bundled name or path) with whole `sections` replaced, then `--set` overrides,
    validated: what a plugin command that makes runs (import-weights) starts from."""
    loaded = loaded or load_plugins()
    data, where = load_data(spec, loaded.registry)
    for path, section in (sections or {}).items():
        data[path] = dict(section)
    data = apply_overrides(data, overrides, loaded.registry)
    return validate(data, loaded.registry, where)


def create_run(
    resolved: Resolved,
    fill: Callable[[Model], None],
    run_dir: Path | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """A run directory at iteration 0, as a fresh run of `resolved` would start it (same seed,
    fresh optimizers), with `fill(model)` having set what it brings (imported weights), so
    `cgfw run --resume` fine-tunes from there and translate / export / eval use it now. `meta`
    joins run.json. An existing run directory is refused, never overwritten."""
    loaded = load_plugins()
    torch.manual_seed(resolved.recipe.run.seed)
    model = build_model(resolved)
    fill(model)
    r = resolved.recipe.run
    if run_dir is None:
        run_dir = new_run_dir(Path(r.output_dir), f"{r.name}-imported")
    elif RunDir(run_dir).is_run() or RunDir(run_dir).checkpoints.exists():
        raise CgfwError(
            f"{run_dir}: already a run directory; choose a new folder so no run is overwritten"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CgfwError(f"{run_dir}: cannot create it ({exc.strerror})") from None
    with locked(run_dir):
        run = RunDir(run_dir)
        run.write_recipe(resolved.to_toml())
        run.write_provenance(provenance(torch.device("cpu"), loaded.plugins) | dict(meta or {}))
        start = Checkpoint(
            iteration=0,
            epoch=1,
            rng={"torch": torch.get_rng_state()},
            model=model.state_dict(),
            recipe=resolved.to_dict(),
        )
        checkpoint.save(run.checkpoints, start)
    return run_dir
