"""Run directories: where a run's recipe, provenance, events, samples and checkpoints live."""

from __future__ import annotations

import fcntl
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import cgfw
from cgfw.errors import CgfwError
from cgfw.plugin.loader import PluginInfo
from cgfw.recipe.schema import PATH_CHARACTERS
from cgfw.store.layout import RunDir, write_error


def new_run_dir(parent: Path, name: str) -> Path:
    """parent/NAME-YYYYmmdd-HHMMSS, with a counter if two runs start in the same second."""
    if any(c in name for c in PATH_CHARACTERS):  # the recipe refuses it; callers may not check
        raise CgfwError(f"run.name {name!r}: a run name is one path component, without / or \\")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CgfwError(
            f"run.output_dir: cannot create '{parent}' ({exc.strerror}); "
            "choose a writable folder with --set run.output_dir=DIR"
        ) from None
    for n in range(1, 1000):
        path = parent / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise CgfwError(f"run.output_dir: cannot create '{path}' ({exc.strerror})") from None
    raise RuntimeError(f"could not create a run directory under {parent}")


def _git_commit() -> str | None:
    """The engine's commit when it runs from a git checkout (editable install)."""
    source = Path(cgfw.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if out.stdout.strip() else "")


def provenance(device: torch.device, plugins: list[PluginInfo]) -> dict[str, Any]:
    """What it takes to trust and redo a run."""
    return {
        "cgfw": cgfw.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor(),
        "git_commit": _git_commit(),
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "plugins": {
            p.name: {"distribution": p.distribution, "version": p.version, "status": p.status}
            for p in plugins
        },
    }


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `run_dir` so two runs cannot write into it at once. The kernel
    drops the lock when the process dies, even by SIGKILL, so a crash never leaves it stuck."""
    path = RunDir(run_dir).lock
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        owner = path.read_text(encoding="utf-8").strip() or "?"
        raise CgfwError(
            f"run directory {run_dir} is in use by another cgfw process (pid {owner}); "
            "wait for it to finish or stop it first"
        ) from None
    try:  # the owner's pid, for the error of a second run (a lock held without it is kept)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    except OSError as exc:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise write_error(path, exc) from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
