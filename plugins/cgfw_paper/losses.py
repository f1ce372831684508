"""Adversarial losses (LSGAN as in the paper, vanilla BCE, hinge) and the L1 reconstruction loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from cgfw import NoOptions, Register, hookimpl


class LabelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    real_label: float = Field(
        1.0, description="target for real scores (< 1 is one-sided label smoothing)"
    )
    fake_label: float = 0.0


class LSGANLoss:
    """Least squares (Mao et al.): MSE of the scores to the real / fake targets."""

    def __init__(self, opts: LabelOptions) -> None:
        self.opts = opts

    def __call__(self, scores: Tensor, real: bool, for_discriminator: bool = False) -> Tensor:
        target = self.opts.real_label if real else self.opts.fake_label
        return F.mse_loss(scores, torch.full_like(scores, target))


class BCELoss(LSGANLoss):
    """The original GAN objective, on logits for numerical stability."""

    def __call__(self, scores: Tensor, real: bool, for_discriminator: bool = False) -> Tensor:
        target = self.opts.real_label if real else self.opts.fake_label
        return F.binary_cross_entropy_with_logits(scores, torch.full_like(scores, target))


def hinge(_: NoOptions) -> object:
    def loss(scores: Tensor, real: bool, for_discriminator: bool = False) -> Tensor:
        if not for_discriminator:
            return -scores.mean()  # the generator pushes scores up without a margin
        return F.relu(1.0 - scores).mean() if real else F.relu(1.0 + scores).mean()

    return loss


def l1(_: NoOptions) -> object:
    return F.l1_loss


@hookimpl
def register_gan_losses(register: Register) -> None:
    register("lsgan", LSGANLoss, LabelOptions, "least-squares GAN loss (the paper's choice)")
    register("bce", BCELoss, LabelOptions, "vanilla GAN loss: binary cross-entropy on logits")
    register("hinge", hinge, None, "hinge loss (margin 1 for D, -mean score for G)")


@hookimpl
def register_reconstruction_losses(register: Register) -> None:
    register("l1", l1, None, "mean absolute error (the paper's cycle and identity loss)")
