"""DiffAugment (Zhao et al. 2020, mit-han-lab/data-efficient-gans): differentiable colour,
translation and cutout applied to every image the discriminator sees, real and generated
alike, in its own update and in the generators' (gradients flow through to the generators).
Each image draws its own parameters; `p` applies the policy to each image with probability p
(1: always, the paper's setting)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cgfw import Register, hookimpl, lazy

# The policies' names; their functions are in cgfw_field/diffaugment.py (POLICIES).
POLICY_NAMES = ("color", "translation", "cutout")


class DiffAugmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: list[str] = Field(
        default_factory=lambda: ["color", "translation", "cutout"],
        description="transformations in order: color, translation, cutout (the paper's all)",
    )
    p: float = Field(1.0, ge=0, le=1, description="probability an image is augmented")

    @field_validator("policy")
    @classmethod
    def _known(cls, policy: list[str]) -> list[str]:
        unknown = [p for p in policy if p not in POLICY_NAMES]
        if unknown:
            raise ValueError(f"unknown {unknown}; use any of {', '.join(POLICY_NAMES)}")
        return policy


@hookimpl
def register_augments(register: Register) -> None:
    register(
        "diffaugment",
        lazy("cgfw_field.diffaugment:DiffAugment"),
        DiffAugmentOptions,
        "DiffAugment: colour, translation, cutout on real and fake D inputs (Zhao et al. 2020)",
    )
