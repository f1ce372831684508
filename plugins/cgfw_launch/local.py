"""The default launcher: the runs on this machine, one after another in this process, or
`--jobs N` `cgfw run` processes side by side (spread over the GPUs when there are several)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import cgfw
from cgfw import Batch, NoOptions, Register, RunDir, finished_losses, hookimpl, run_command


class Local:
    def __init__(self, options: NoOptions) -> None:
        pass

    def launch(self, batch: Batch) -> dict[str, dict[str, float]]:
        if batch.jobs == 1:
            results = {}
            for run_dir, resolved in batch.runs.items():
                batch.console.rule(run_dir.name)
                # cgfw.launch, looked up when called: it imports torch, registering does not
                run = cgfw.launch(resolved, batch.loaded, run_dir, batch.console, batch.device)
                results[run_dir.name] = run.final_losses
            return results
        return side_by_side(batch)


def side_by_side(batch: Batch) -> dict[str, dict[str, float]]:
    """Each run in its own `cgfw run` process, `jobs` at a time; a batch-1 CycleGAN leaves most
    of a large GPU idle, so several fit side by side. With several GPUs, runs take turns."""
    import torch  # here: registering the launcher (cgfw plugins) imports no torch

    gpus = torch.cuda.device_count()
    pending = list(batch.runs)
    active: list[tuple[Path, subprocess.Popen[bytes]]] = []
    results: dict[str, dict[str, float]] = {}
    n = 0
    while pending or active:
        while pending and len(active) < batch.jobs:
            run_dir = pending.pop(0)
            env = dict(os.environ)
            if not gpus and "OMP_NUM_THREADS" not in env:
                # Runs sharing the CPU split its cores instead of each claiming all of them.
                env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // batch.jobs))
            if gpus > 1:
                env["CUDA_VISIBLE_DEVICES"] = str(n % gpus)
            n += 1
            command = run_command(run_dir, batch.device)
            with open(RunDir(run_dir).log, "wb") as log:
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            active.append((run_dir, proc))
            batch.console.print(f"started {run_dir.name} (log: {RunDir(run_dir).log})")
        time.sleep(0.2)
        for run_dir, proc in list(active):
            if proc.poll() is None:
                continue
            active.remove((run_dir, proc))
            losses = finished_losses(run_dir)
            if proc.returncode == 0 and losses is not None:
                results[run_dir.name] = losses
                batch.console.print(f"finished {run_dir.name}")
            else:
                results[run_dir.name] = {}
                log_path = RunDir(run_dir).log
                batch.console.print(
                    f"[red]{run_dir.name} failed (exit {proc.returncode}): {log_path}[/red]"
                )
    return {p.name: results[p.name] for p in batch.runs}  # in the order they were planned


@hookimpl
def register_launchers(register: Register) -> None:
    register(
        "local",
        Local,
        NoOptions,
        "this machine: one run after another, or --jobs N processes side by side (default)",
        default=True,  # `cgfw ablate` without --launcher
    )
