"""Start or resume one run: its directory, recorded recipe and provenance, then training."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from cgfw import checkpoint
from cgfw.distributed import Group, device_for
from cgfw.layout import RunDir
from cgfw.plugins import Loaded
from cgfw.recipe import Resolved
from cgfw.runs import locked, provenance, write_json
from cgfw.trainer import RunResult, resolve_device, train


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
