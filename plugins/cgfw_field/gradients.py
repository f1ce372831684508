"""The gradient penalties and the Wasserstein critic loss (penalties.py registers them lazily,
with their options): imported when a run builds one."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cgfw_field.penalties import GpMixOptions, GpOptions, R1Options


def input_gradients(d: nn.Module, x: Tensor) -> Tensor:
    """d(mean score of each image) / d(image), flattened to (N, C * H * W), kept in the graph so
    the penalty trains the discriminator (create_graph)."""
    x = x.detach().float().requires_grad_(True)
    with torch.autocast(x.device.type, enabled=False):
        scores = d(x).float()
    per_image = scores.flatten(1).mean(1)
    (grad,) = torch.autograd.grad(per_image.sum(), x, create_graph=True)
    return grad.flatten(1)


class R1:
    """Mescheder et al. 2018: a zero-centred penalty on real images, gamma / 2 x E |grad D|^2."""

    graph_safe = False

    def __init__(self, options: R1Options) -> None:
        self.gamma = options.gamma

    def __call__(self, d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return self.gamma / 2 * input_gradients(d, real).pow(2).sum(1).mean()


class WganGp:
    """Gulrajani et al. 2017: (|grad D(x_hat)| - 1)^2 on x_hat = a real + (1 - a) fake, one a ~
    U(0, 1) per image; pairs with losses.gan.name = "wgan"."""

    graph_safe = False

    def __init__(self, options: GpOptions) -> None:
        self.weight = options.weight

    def __call__(self, d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        a = torch.rand(len(real), 1, 1, 1, device=real.device)
        mixed = a * real.detach().float() + (1 - a) * fake.detach().float()
        norms = input_gradients(d, mixed).norm(2, dim=1)
        return self.weight * (norms - 1).pow(2).mean()


class GpMix:
    """UVCGAN2 (LS4GAN/uvcgan2, GradientPenalty): lambda x (|grad D(x)| - center)^2 on x = a real
    + (1 - a) fake with one a ~ U(0, 1) for the whole batch, averaged over the images."""

    graph_safe = False

    def __init__(self, options: GpMixOptions) -> None:
        self.o = options

    def __call__(self, d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        real, fake = real.detach().float(), fake.detach().float()
        if self.o.mix == "real":
            x = real
        elif self.o.mix == "fake":
            x = fake
        else:
            a = torch.rand((), device=real.device)
            x = a * real + (1 - a) * fake
        norms = input_gradients(d, x).norm(2, dim=1)
        return self.o.weight * (norms - self.o.center).pow(2).mean()


def wgan(_options: object) -> object:
    """The Wasserstein critic loss: -mean(scores) for what should read as real, +mean for fake
    (the discriminator's last layer stays linear); with wgan_gp, Gulrajani et al.'s WGAN-GP."""

    def loss(scores: Tensor, real: bool, for_discriminator: bool) -> Tensor:
        return -scores.mean() if real else scores.mean()

    return loss
