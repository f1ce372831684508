"""Learning-rate schedules as factors of the base rate per (1-based) epoch."""

from __future__ import annotations

import math
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from cgfw import NoOptions, Register, hookimpl

Factor = Callable[[int], float]

# As train.epochs: no run has more epochs (a typo such as 1e18 is refused, not taken).
MAX_EPOCHS = 10**9


class LinearDecayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: int = Field(100, ge=0, le=MAX_EPOCHS, description="epochs at the base rate")
    n_epochs_decay: int = Field(
        100, ge=0, le=MAX_EPOCHS, description="epochs of linear decay that follow"
    )


class StepOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step_size: int = Field(50, ge=1, le=MAX_EPOCHS, description="epochs between decays")
    # Above 1 the rate would grow each step until gamma ** steps overflows a float.
    gamma: float = Field(0.1, gt=0, le=1, description="factor applied at each step")


class CosineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: int = Field(
        200, ge=1, le=MAX_EPOCHS, description="epochs from the base rate to min_factor"
    )
    min_factor: float = Field(0.0, ge=0)


def linear_decay(opts: LinearDecayOptions) -> Factor:
    """The authors' rule: 1 - max(0, e - n_epochs) / (n_epochs_decay + 1), so the last epoch
    still trains at base / (n_epochs_decay + 1) rather than zero."""
    return lambda epoch: 1.0 - max(0, epoch - opts.n_epochs) / (opts.n_epochs_decay + 1)


def constant(_: NoOptions) -> Factor:
    return lambda epoch: 1.0


def step(opts: StepOptions) -> Factor:
    return lambda epoch: float(opts.gamma ** ((epoch - 1) // opts.step_size))


def cosine(opts: CosineOptions) -> Factor:
    def factor(epoch: int) -> float:
        t = min(epoch - 1, opts.n_epochs) / opts.n_epochs
        return opts.min_factor + (1 - opts.min_factor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


@hookimpl
def register_schedules(register: Register) -> None:
    register(
        "linear_decay", linear_decay, LinearDecayOptions, "constant, then linear decay (paper)"
    )
    register("constant", constant, None, "the base rate throughout")
    register("step", step, StepOptions, "multiply by gamma every step_size epochs")
    register("cosine", cosine, CosineOptions, "cosine annealing over n_epochs")
