"""Checkpoints: a typed `Checkpoint`, written atomically next to the previous good one, read
without unpickling code, and brought up to this version's format by one upgrade step per older
format. Nothing outside this module reads or writes a checkpoint's keys."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cgfw.errors import CgfwError
from cgfw.store.layout import write_error

# 2: a checksum of the contents, and the open log window (so resumed runs log what
# uninterrupted ones do).
FORMAT = 2
LATEST, PREVIOUS = "latest.pt", "previous.pt"

# The file's keys, named once.
K_FORMAT, K_ITERATION, K_EPOCH, K_RNG, K_MODEL, K_RECIPE, K_EMA, K_LOG, K_CHECKSUM = (
    "format", "iteration", "epoch", "rng", "model", "recipe", "ema", "log", "checksum",
)  # fmt: skip
# The model's state (`cgfw.Model.state_dict`): its networks' weights by network name.
K_NETWORKS = "networks"


class DamagedCheckpoint(CgfwError):
    """The file is not what was written (a flipped bit, a truncated or overwritten file, a
    foreign structure): the run's other checkpoint may still be good."""


def _from_format_1(state: dict[str, Any]) -> dict[str, Any]:
    """Format 1 had no checksum (nothing to check) and no saved log window (a run resumed
    from it starts an empty one, as it did then)."""
    return state | {K_LOG: {}}


# format N -> the step that turns a format-N file's dict into format N + 1's.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_format_1}


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
    log: dict[str, Any] = field(default_factory=dict)  # the loop's open log window
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
            K_LOG: self.log,
        }
        return state | ({K_EMA: self.ema} if self.ema is not None else {})

    @classmethod
    def from_dict(cls, state: dict[str, Any], path: Path) -> Checkpoint:
        """A file's dict at this version's format, checked key by key: a damaged or foreign
        structure is one error naming the file and the key."""

        def need(key: str, kind: type | tuple[type, ...], what: str) -> Any:
            value = state.get(key)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
                raise DamagedCheckpoint(
                    f"{path}: damaged checkpoint: '{key}' should be {what}, got "
                    f"{type(value).__name__}"
                )
            return value

        iteration = need(K_ITERATION, int, "an iteration number")
        if iteration < 0:
            raise DamagedCheckpoint(f"{path}: damaged checkpoint: iteration {iteration} < 0")
        recipe = need(K_RECIPE, dict, "the resolved recipe (a table)")
        model = need(K_MODEL, dict, "the model's state (a table)")
        networks = model.get(K_NETWORKS)
        if not isinstance(networks, dict) or not networks:
            raise DamagedCheckpoint(f"{path}: damaged checkpoint: the model holds no networks")
        for name, weights in networks.items():
            if not isinstance(weights, dict) or not all(
                isinstance(w, Tensor) for w in weights.values()
            ):
                raise DamagedCheckpoint(
                    f"{path}: damaged checkpoint: network '{name}' is not a table of tensors"
                )
        rng = state.get(K_RNG, {})
        if not isinstance(rng, dict) or not all(isinstance(r, Tensor) for r in rng.values()):
            raise DamagedCheckpoint(f"{path}: damaged checkpoint: 'rng' is not a table of tensors")
        epoch = need(K_EPOCH, int, "an epoch number") if K_EPOCH in state else 1
        ema = need(K_EMA, dict, "the moving averages (a table)") if K_EMA in state else None
        log = need(K_LOG, dict, "the open log window (a table)") if K_LOG in state else {}
        return cls(iteration, recipe, model, epoch, rng, ema, log, path)


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
    if version >= 2:  # a checksum from format 2 on
        verify(state, path)
    while version < FORMAT:
        if version not in UPGRADES:
            raise CgfwError(f"{path}: checkpoint format {version} can no longer be read")
        state = UPGRADES[version](state)
        version += 1
        state[K_FORMAT] = version
    return state


def checksum(state: Mapping[str, Any]) -> str:
    """BLAKE2b of everything a checkpoint holds but the checksum: keys, plain values, and each
    tensor's dtype, shape and bytes, in a fixed order. torch's zip reader checks no CRC, so
    without this a flipped bit in a weight loads without a word."""
    digest = hashlib.blake2b(digest_size=32)

    def feed(value: Any) -> None:
        if isinstance(value, Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():  # as bytes (bf16 has no numpy dtype; 0-d tensors cannot be viewed)
                digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(value, Mapping):
            digest.update(f"D{len(value)}".encode())
            for key in sorted(value, key=repr):
                feed(key)
                feed(value[key])
        elif isinstance(value, list | tuple):
            digest.update(f"L{len(value)}".encode())
            for item in value:
                feed(item)
        else:  # str, int, float, bool, None
            digest.update(f"{type(value).__name__}:{value!r};".encode())

    feed({k: v for k, v in state.items() if k != K_CHECKSUM})
    return digest.hexdigest()


def verify(state: Mapping[str, Any], path: Path) -> None:
    saved = state.get(K_CHECKSUM)
    if not isinstance(saved, str):
        raise DamagedCheckpoint(f"{path}: damaged checkpoint: its checksum is missing")
    if checksum(state) != saved:
        raise DamagedCheckpoint(
            f"{path}: damaged checkpoint: its contents do not match its checksum (a flipped "
            "bit or an overwritten block)"
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(directory: Path, ckpt: Checkpoint) -> Path:
    """Write `latest.pt` via a temporary file; the old latest becomes `previous.pt`.

    A crash at any moment leaves at least one complete checkpoint behind. The run directory
    must exist: one deleted while training is an error, not silently made again.
    """
    if not directory.parent.is_dir():
        raise CgfwError(
            f"the run directory {directory.parent} is gone (deleted while training?); "
            "stopped, nothing written"
        )
    tmp = directory / f".{LATEST}.tmp"
    latest = directory / LATEST
    state = ckpt.to_dict()
    state[K_CHECKSUM] = checksum(state)
    try:
        directory.mkdir(exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if latest.exists():
            os.replace(latest, directory / PREVIOUS)
        os.replace(tmp, latest)
        _fsync_dir(directory)
    except (OSError, RuntimeError) as exc:
        # torch's zip writer reports a full disk as a RuntimeError ("file write failed",
        # "unexpected pos"); the state is tensors and plain values, so that is all it can be.
        tmp.unlink(missing_ok=True)
        raise CgfwError(
            f"{write_error(latest, exc)}; the previous checkpoint is untouched"
        ) from None
    return latest


def keep(latest: Path, target: Path) -> Path:
    """`target` made the checkpoint `latest` (just written by `save`) holds, beyond the
    latest/previous rotation's reach: a hard link where the file system has them (instant, no
    space; `save` only renames files, never writes into one, so the link keeps what it holds),
    else a copy. Through a temporary name either way: `target` is always a whole checkpoint,
    and one of the same name (an iteration trained again after a resume) is replaced."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)  # left by a crash: os.link will not overwrite it
        try:
            os.link(latest, tmp)
        except OSError:  # no hard links here (FAT, exFAT, some network and FUSE mounts)
            with open(latest, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CgfwError(f"{write_error(target, exc)}; {latest} is written") from None
    return target


def load(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Tensors and plain containers only: a crafted pickle cannot run code here."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CgfwError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise CgfwError(f"{path}: a folder, not a checkpoint file") from None
    except Exception as exc:
        if not damaged(exc):  # out of memory, a device error: not the file's fault
            raise
        raise DamagedCheckpoint(
            f"{path}: not a readable cgfw checkpoint ({refusal_reason(exc)}); give a run "
            "directory or its checkpoints/latest.pt"
        ) from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"{path}: not a cgfw checkpoint (no format field)")
    return Checkpoint.from_dict(upgrade(state, path), path)


def load_newest(
    directory: Path, warn: Callable[[str], None], map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """The run's latest checkpoint or, when that one is damaged, its previous one, with one
    warning naming both: a bad latest.pt never makes the user rename files by hand."""
    latest, previous = directory / LATEST, directory / PREVIOUS
    if not latest.is_file():
        return load(latest_in(directory), map_location)
    try:
        return load(latest, map_location)
    except DamagedCheckpoint as exc:
        if not previous.is_file():
            raise
        try:
            ckpt = load(previous, map_location)
        except DamagedCheckpoint:
            raise DamagedCheckpoint(
                f"both checkpoints of {directory.parent} are damaged: {exc}; and {previous} "
                "too. The run cannot go on from them"
            ) from None
        warn(
            f"{latest} is damaged ({str(exc).removeprefix(f'{latest}: ')}); using {previous} "
            f"(iteration {ckpt.iteration}) instead"
        )
        return ckpt


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
