"""Run directories: where a run's recipe, provenance, events, samples and checkpoints live."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import cgfw
from cgfw.plugins import PluginInfo


def new_run_dir(parent: Path, name: str) -> Path:
    """parent/NAME-YYYYmmdd-HHMMSS, with a counter if two runs start in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = parent / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
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


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
