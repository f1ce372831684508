"""The yardstick for `cgfw bench --compare`: a plain eager fp32 CycleGAN iteration written the
way the authors' `cycle_gan_model.optimize_parameters` does it, on the same network modules.

Deliberately unoptimised and independent of cgfw's step, losses and pool: it answers "how fast
would the authors' code run these networks on this machine", and `cgfw bench` reports every
setting as a ratio to it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import Tensor, nn


class AuthorsImagePool:
    """The authors' pool: python's `random`, one image at a time."""

    def __init__(self, size: int) -> None:
        self.size, self.images = size, []

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad = flag


def make_step(
    g_ab: nn.Module,
    g_ba: nn.Module,
    d_a: nn.Module,
    d_b: nn.Module,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    lambda_cycle: float = 10.0,
    lambda_identity: float = 0.5,
    pool_size: int = 50,
) -> Callable[[Tensor, Tensor], None]:
    """A closure doing one authors'-style iteration on (real_a, real_b)."""
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    opt_g = torch.optim.Adam(list(g_ab.parameters()) + list(g_ba.parameters()), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), lr=lr, betas=betas)
    pool_a, pool_b = AuthorsImagePool(pool_size), AuthorsImagePool(pool_size)

    def gan_loss(pred: Tensor, real: bool) -> Tensor:
        return mse(pred, torch.tensor(1.0 if real else 0.0, device=pred.device).expand_as(pred))

    def step(real_a: Tensor, real_b: Tensor) -> None:
        fake_b = g_ab(real_a)
        rec_a = g_ba(fake_b)
        fake_a = g_ba(real_b)
        rec_b = g_ab(fake_a)

        _set_requires_grad([d_a, d_b], False)
        opt_g.zero_grad()
        idt_a = g_ab(real_b)
        loss_idt_a = l1(idt_a, real_b) * lambda_cycle * lambda_identity
        idt_b = g_ba(real_a)
        loss_idt_b = l1(idt_b, real_a) * lambda_cycle * lambda_identity
        loss_g = (
            gan_loss(d_b(fake_b), True)
            + gan_loss(d_a(fake_a), True)
            + l1(rec_a, real_a) * lambda_cycle
            + l1(rec_b, real_b) * lambda_cycle
            + loss_idt_a
            + loss_idt_b
        )
        loss_g.backward()
        opt_g.step()

        _set_requires_grad([d_a, d_b], True)
        opt_d.zero_grad()
        for d, real, fake in (
            (d_b, real_b, pool_b.query(fake_b)),
            (d_a, real_a, pool_a.query(fake_a)),
        ):
            loss_d = (gan_loss(d(real), True) + gan_loss(d(fake.detach()), False)) * 0.5
            loss_d.backward()
        opt_d.step()

    return step
