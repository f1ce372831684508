"""Checkpoints: written atomically next to the previous good one, read without unpickling code."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cgfw.errors import CgfwError

FORMAT = 1
LATEST, PREVIOUS = "latest.pt", "previous.pt"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(directory: Path, state: dict[str, Any]) -> Path:
    """Write `latest.pt` via a temporary file; the old latest becomes `previous.pt`.

    A crash at any moment leaves at least one complete checkpoint behind.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{LATEST}.tmp"
    latest = directory / LATEST
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        if latest.exists():
            os.replace(latest, directory / PREVIOUS)
        os.replace(tmp, latest)
        _fsync_dir(directory)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CgfwError(
            f"cannot write checkpoint in {directory}: {exc.strerror}; "
            "the previous checkpoint is untouched"
        ) from None
    return latest


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Tensors and plain containers only: a crafted pickle cannot run code here."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CgfwError(f"checkpoint not found: {path}") from None
    except Exception as exc:
        if not damaged(exc):  # out of memory, a device error: not the file's fault
            raise
        raise CgfwError(
            f"{path}: not a readable cgfw checkpoint ({refusal_reason(exc)}); give a run "
            "directory or its checkpoints/latest.pt"
        ) from None
    if not isinstance(state, dict) or "format" not in state:
        raise CgfwError(f"{path}: not a cgfw checkpoint (no format field)")
    if state["format"] > FORMAT:
        raise CgfwError(
            f"{path}: checkpoint format {state['format']} is newer than this cgfw reads "
            f"({FORMAT}); upgrade cgfw"
        )
    return state


# Words of torch's errors about memory and devices: loading a good file can fail there too.
NOT_THE_FILE = ("CUDA", "out of memory")


def damaged(exc: Exception) -> bool:
    """Whether torch.load failed on what the file holds (truncated, overwritten, not a
    checkpoint, refused by the weights-only unpickler) rather than on memory or a device,
    whose errors surface as they are, with their cause."""
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return False
    accelerator = getattr(torch, "AcceleratorError", None)
    if accelerator is not None and isinstance(exc, accelerator):
        return False
    return not (isinstance(exc, RuntimeError) and any(w in str(exc) for w in NOT_THE_FILE))


def refusal_reason(exc: Exception) -> str:
    """The line of torch's long load error that says what is wrong (its advice to load with
    weights_only=False is exactly what must not be done with a file of unknown origin)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    reason = next((line for line in lines if "Unsupported" in line), None)
    reason = reason or next((line for line in lines if line), type(exc).__name__)
    return reason.removeprefix("WeightsUnpickler error: ").split(". Please")[0].rstrip(".")


def latest_in(directory: Path) -> Path:
    """The newest complete checkpoint in `directory` (falls back to the previous one)."""
    for name in (LATEST, PREVIOUS):
        if (directory / name).is_file():
            return directory / name
    raise CgfwError(f"no checkpoint in {directory}; nothing to resume")


def refuse_old_conv_biases(
    path: Path, saved: Mapping[str, Mapping[str, Tensor]], networks: Mapping[str, nn.Module]
) -> None:
    """One clear error for a checkpoint saved before cgfw_paper's networks took the authors'
    bias rule (a conv bias only with instance norm; issue 25): its norm "none" convs had
    biases the network lacks now. Those were trained, so dropping them would change what the
    network computes; load_state_dict's list of unexpected keys would not say why."""
    for name, net in networks.items():
        weights = saved.get(name)
        if not isinstance(weights, Mapping):
            continue  # missing networks are the caller's error to report
        expected = net.state_dict().keys()
        extra = [k for k in weights if k not in expected]
        if extra and all(
            k.endswith(".bias") and k.removesuffix(".bias") + ".weight" in expected for k in extra
        ):
            raise CgfwError(
                f"{path}: the network layout changed: {name} has conv biases cgfw's network "
                f"lacks now ('{extra[0]}' and {len(extra) - 1} more). norm \"none\" networks "
                "built before cgfw took the authors' bias rule (issue 25: a conv bias only "
                "with instance norm) had conv biases; they were trained, so they are not "
                "dropped: use the cgfw that trained this run, or train it anew"
            )
