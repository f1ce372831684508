"""The paper's loss functions: LSGAN (its choice), vanilla BCE on logits, hinge, and L1 for the
cycle and identity terms. Imported when a loss is built (losses.py registers them lazily)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cgfw import NoOptions
from cgfw_paper.losses import LabelOptions


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
