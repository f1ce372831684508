"""Start or resume one run: its directory, recorded recipe and provenance, then training.
`train_run` is what `cgfw run` and the Python API (`cgfw.train`) both call."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from cgfw import checkpoint, distributed
from cgfw.cli.console import QUIET
from cgfw.distributed import Group, device_for
from cgfw.errors import CgfwError, TrainingStopped
from cgfw.layout import RunDir
from cgfw.plugins import Loaded
from cgfw.recipe import Resolved
from cgfw.runs import locked, new_run_dir, provenance, write_json
from cgfw.trainer import RunResult, resolve_device, train


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
    except CgfwError as exc:
        created = new and into is None and group.main and run_dir is not None  # made here
        untrained = created and not RunDir(run_dir).checkpoints.exists()  # type: ignore[arg-type]
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
        latest = resume_from(run_dir, resume)
        meta = provenance(device, loaded.plugins) | {"processes": group.world}
        if resume:
            write_json(RunDir(run_dir).resume_record(), meta)
        else:
            # Written before any tensor exists, so even a crashed run can be redone exactly.
            RunDir(run_dir).recipe.write_text(resolved.to_toml(), encoding="utf-8")
            write_json(RunDir(run_dir).provenance, meta)
        console.print(f"run directory: {run_dir}  (device {device}, {group.world} process(es))")
        result = train(
            resolved, loaded, run_dir, device, console, latest, group, allow_changes=allow_changes
        )
        if resume:  # the run goes on with the accepted changes (say, a longer schedule)
            RunDir(run_dir).recipe.write_text(resolved.to_toml(), encoding="utf-8")
        write_json(RunDir(run_dir).final_losses, result.final_losses)
    return result


def resume_from(run_dir: Path, resume: bool) -> Path | None:
    return checkpoint.latest_in(RunDir(run_dir).checkpoints) if resume else None
