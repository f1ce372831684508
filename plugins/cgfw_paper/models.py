"""The paper's model as recipes see it: the CycleGAN's slots, the keys its loss slots take, the
translations it learns, and its name. The model itself (`CycleGAN.step`, the training
iteration) is in cgfw_paper/cyclegan.py, imported when a run builds it: reading or checking a
recipe imports no torch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, Slot, hookimpl, lazy


class _Keys(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GanKeys(_Keys):
    weight: float = Field(1.0, ge=0, description="0 trains the generators by reconstruction alone")


class CycleKeys(_Keys):
    weight: float = Field(10.0, ge=0, description="lambda: absolute weight of each cycle term")
    forward: bool = Field(True, description="the A -> B -> A term (rec_a vs real_a)")
    backward: bool = Field(True, description="the B -> A -> B term (rec_b vs real_b)")


class IdentityKeys(_Keys):
    weight: float = Field(
        0.5,
        ge=0,
        description="RELATIVE to losses.cycle.weight, as the authors' lambda_identity: the "
        "identity term's absolute weight is weight x losses.cycle.weight (0.5 x 10 = 5); "
        "0 skips the identity forward passes",
    )


class PairedKeys(_Keys):
    weight: float = Field(
        0.0,
        ge=0,
        description="supervision from aligned pairs (not in the paper; the paired upper bound): "
        "weight x (L1(fake_b, real_b) + L1(fake_a, real_a)); needs a dataset that yields "
        "aligned training pairs, e.g. data.paired = true with the emoji dataset",
    )


class CycleGANOptions(_Keys):
    """The model takes its settings from its slots' keys; train.stack_calls says whether it may
    stack network calls."""


SLOTS: dict[str, Slot] = {
    "data": Slot("dataset", "folder"),
    "schedule": Slot("schedule", "linear_decay"),
    "generator": Slot("generator", "resnet"),
    "discriminator": Slot("discriminator", "patchgan"),
    "losses.gan": Slot("gan_loss", "lsgan", GanKeys),
    "losses.cycle": Slot("reconstruction_loss", "l1", CycleKeys),
    "losses.identity": Slot("reconstruction_loss", "l1", IdentityKeys),
    "losses.paired": Slot("reconstruction_loss", "l1", PairedKeys),
    "buffer": Slot("buffer", "image_pool"),
    # Not in the paper; none unless a recipe names one (cgfw_field ships r1, wgan_gp,
    # gp_mix and diffaugment).
    "regularizer": Slot("regularizer", optional=True),
    "augment": Slot("augment", optional=True),
}
DIRECTIONS: dict[str, tuple[str, str]] = {
    "a2b": ("g_ab", "generator"),
    "b2a": ("g_ba", "generator"),
}


@hookimpl
def register_models(register: Register) -> None:
    register(
        "cyclegan",
        lazy("cgfw_paper.cyclegan:CycleGAN"),
        CycleGANOptions,
        "CycleGAN (Zhu et al. 2017): two generators, two discriminators, cycle + identity",
        slots=SLOTS,
        directions=DIRECTIONS,
        default=True,  # recipes without a [model] section train the paper's model
    )
