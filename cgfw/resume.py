"""What a resumed run may change: the length of training and how it is logged, not what is
being trained. Anything else would silently mix two experiments in one run directory."""

from __future__ import annotations

from typing import Any

from cgfw.errors import CgfwError
from cgfw.tensorboard import flatten

# Keys a resume may change freely (prefixes end with a dot).
SAFE = (
    "run.description",
    "train.max_iters",
    "train.epochs",
    "train.device",
    "train.num_workers",
    "train.log_every",
    "train.image_every",
    "train.checkpoint_every",
    "train.samples",
    "train.precision",
    "train.channels_last",
    "train.compile",
    "train.cuda_graph",
    "schedule.",  # e.g. a longer decay
    "eval.",  # what is measured along the way, not what is trained
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
