"""Checkpoints: a typed `Checkpoint`, written atomically next to the previous good one, read
without unpickling code, and brought up to this version's format by one upgrade step per older
format. Nothing outside this module reads or writes a checkpoint's keys."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cgfw.errors import CgfwError

FORMAT = 1
LATEST, PREVIOUS = "latest.pt", "previous.pt"

# The file's keys, named once.
K_FORMAT, K_ITERATION, K_EPOCH, K_RNG, K_MODEL, K_RECIPE, K_EMA = (
    "format", "iteration", "epoch", "rng", "model", "recipe", "ema",
)  # fmt: skip
# The model's state (`cgfw.Model.state_dict`): its networks' weights by network name.
K_NETWORKS = "networks"

# format N -> the step that turns a format-N file's dict into format N + 1's.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass
class Checkpoint:
    """Where a run stands at one iteration: what it trained with (the resolved recipe), the
    model's state (networks, optimizers, anything the model adds), the random state, and the
    generators' moving average when the run keeps one."""

    iteration: int
    recipe: dict[str, Any]
    model: dict[str, Any]
    epoch: int = 1
    rng: dict[str, Tensor] = field(default_factory=dict)
    ema: dict[str, Any] | None = None
    path: Path | None = None  # the file it was read from

    def weights(self, network: str, averaged: bool = True) -> dict[str, Tensor]:
        """One network's weights: its moving average when kept and `averaged`, else trained."""
        if averaged and self.ema and network in self.ema:
            return dict(self.ema[network])
        try:
            return dict(self.model[K_NETWORKS][network])
        except (KeyError, TypeError):
            raise CgfwError(f"{self.path}: holds no weights for network '{network}'") from None

    def has_average(self, network: str) -> bool:
        return bool(self.ema) and network in (self.ema or {})

    def to_dict(self) -> dict[str, Any]:
        state = {
            K_FORMAT: FORMAT,
            K_ITERATION: self.iteration,
            K_EPOCH: self.epoch,
            K_RNG: self.rng,
            K_MODEL: self.model,
            K_RECIPE: self.recipe,
        }
        return state | ({K_EMA: self.ema} if self.ema is not None else {})

    @classmethod
    def from_dict(cls, state: dict[str, Any], path: Path) -> Checkpoint:
        """A file's dict at this version's format, checked key by key: a damaged or foreign
        structure is one error naming the file and the key."""

        def need(key: str, kind: type | tuple[type, ...], what: str) -> Any:
            value = state.get(key)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
                raise CgfwError(
                    f"{path}: damaged checkpoint: '{key}' should be {what}, got "
                    f"{type(value).__name__}; use the run's other checkpoint (previous.pt)"
                )
            return value

        iteration = need(K_ITERATION, int, "an iteration number")
        recipe = need(K_RECIPE, dict, "the resolved recipe (a table)")
        model = need(K_MODEL, dict, "the model's state (a table)")
        if not isinstance(model.get(K_NETWORKS), dict):
            raise CgfwError(f"{path}: damaged checkpoint: the model's state has no networks")
        ema, epoch, rng = state.get(K_EMA), state.get(K_EPOCH), state.get(K_RNG)
        return cls(
            iteration=iteration,
            recipe=recipe,
            model=model,
            epoch=epoch if isinstance(epoch, int) else 1,
            rng=rng if isinstance(rng, dict) else {},
            ema=ema if isinstance(ema, dict) else None,
            path=path,
        )


def upgrade(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """A file of an older format, brought step by step to this one; newer ones are refused."""
    version = state.get(K_FORMAT)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CgfwError(f"{path}: not a cgfw checkpoint (no format field)")
    if version > FORMAT:
        raise CgfwError(
            f"{path}: checkpoint format {version} is newer than this cgfw reads "
            f"({FORMAT}); upgrade cgfw"
        )
    while version < FORMAT:
        if version not in UPGRADES:
            raise CgfwError(f"{path}: checkpoint format {version} can no longer be read")
        state = UPGRADES[version](state)
        version += 1
        state[K_FORMAT] = version
    return state


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(directory: Path, ckpt: Checkpoint) -> Path:
    """Write `latest.pt` via a temporary file; the old latest becomes `previous.pt`.

    A crash at any moment leaves at least one complete checkpoint behind.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{LATEST}.tmp"
    latest = directory / LATEST
    try:
        with open(tmp, "wb") as f:
            torch.save(ckpt.to_dict(), f)
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


def load(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
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
    if not isinstance(state, dict):
        raise CgfwError(f"{path}: not a cgfw checkpoint (no format field)")
    return Checkpoint.from_dict(upgrade(state, path), path)


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
