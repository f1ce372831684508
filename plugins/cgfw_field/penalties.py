"""Gradient penalties on the discriminator, each a `regularizer`: called with the discriminator,
the real images and the (pooled) fakes of the step, it returns its weighted scalar, which the
CycleGAN adds to that discriminator's loss.

A PatchGAN scores patches; the penalties differentiate each image's mean score (UVCGAN2's
`reduction = "mean"`), so an image's gradient does not grow with the number of patches.
Gradients are taken in fp32 whatever the autocast: squared norms of bf16 gradients lose the
small values the penalty is about."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, hookimpl, lazy


class R1Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gamma: float = Field(10.0, gt=0, description="weight: gamma / 2 x E[|grad D(real)|^2]")


class GpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(10.0, gt=0, description="lambda (Gulrajani et al.: 10)")


class GpMixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(0.01, gt=0, description="lambda_gp (UVCGAN2's scripts' default: 0.01)")
    center: float = Field(0.0, ge=0, description="0: zero-centred, as UVCGAN2 trains")
    mix: Literal["real-fake", "real", "fake"] = Field(
        "real-fake", description="where the gradient is taken: a mix (one a for the batch)"
    )


@hookimpl
def register_regularizers(register: Register) -> None:
    register(
        "r1",
        lazy("cgfw_field.gradients:R1"),
        R1Options,
        "zero-centred gradient penalty on real images (Mescheder 2018)",
    )
    register(
        "wgan_gp",
        lazy("cgfw_field.gradients:WganGp"),
        GpOptions,
        "one-centred penalty on real/fake interpolates (WGAN-GP)",
    )
    register(
        "gp_mix",
        lazy("cgfw_field.gradients:GpMix"),
        GpMixOptions,
        "UVCGAN2's zero-centred penalty on real/fake mixes",
    )


@hookimpl
def register_gan_losses(register: Register) -> None:
    register(
        "wgan",
        lazy("cgfw_field.gradients:wgan"),
        None,
        "Wasserstein critic loss (pair it with regularizer wgan_gp)",
    )
