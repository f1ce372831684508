"""Adversarial losses (LSGAN as in the paper, vanilla BCE, hinge) and the L1 reconstruction loss."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, hookimpl, lazy


class LabelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Targets in [-1, 1]: LSGAN's codings (Mao et al. 2017: 0 / 1 or -1 / 1) and BCE's
    # probabilities in [0, 1] all lie there; far outside, the losses only grow.
    real_label: float = Field(
        1.0, ge=-1, le=1, description="target for real scores (< 1 is one-sided label smoothing)"
    )
    fake_label: float = Field(0.0, ge=-1, le=1, description="target for fake scores")


@hookimpl
def register_gan_losses(register: Register) -> None:
    register(
        "lsgan",
        lazy("cgfw_paper.criteria:LSGANLoss"),
        LabelOptions,
        "least-squares GAN loss (the paper's choice)",
    )
    register(
        "bce",
        lazy("cgfw_paper.criteria:BCELoss"),
        LabelOptions,
        "vanilla GAN loss: binary cross-entropy on logits",
    )
    register(
        "hinge",
        lazy("cgfw_paper.criteria:hinge"),
        None,
        "hinge loss (margin 1 for D, -mean score for G)",
    )


@hookimpl
def register_reconstruction_losses(register: Register) -> None:
    register(
        "l1",
        lazy("cgfw_paper.criteria:l1"),
        None,
        "mean absolute error (the paper's cycle and identity loss)",
    )
