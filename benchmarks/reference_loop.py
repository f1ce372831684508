"""The authors' CycleGAN iteration as a plain loop: the yardstick for `cgfw bench --compare` and
the other side of the parity test (tests/test_parity.py) and of the seeded study
(benchmarks/study_ground_truth.py).

Written from junyanz/pytorch-CycleGAN-and-pix2pix (`models/cycle_gan_model.py`,
`models/networks.py` GANLoss, `util/image_pool.py`), independent of cgfw's step, losses and
pool: forward G_A, G_B; freeze both D; identity, GAN and cycle terms, one backward, one Adam step
for both generators; unfreeze; each D on its real images and a pooled fake, loss x 0.5, one
backward each, one Adam step for both. Eager fp32, one network call per input, as theirs.

Names: the authors' G_A is cgfw's g_ab, G_B is g_ba, D_A (judges domain B) is d_b, D_B is d_a.
`step` returns the loss terms under cgfw's names, detached, so the two loops can be compared
term by term without a host sync per iteration.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# (coin in [0, 1), slot in [0, size)) for one image; the authors draw both from python's random.
PoolDraw = Callable[[int], tuple[float, int]]


def python_random_draw(size: int) -> tuple[float, int]:
    return random.uniform(0, 1), random.randint(0, size - 1)


class GANLoss(nn.Module):
    """Their GANLoss: the targets are buffers on the model's device, expanded to the scores'
    shape, so no tensor is built (or copied to a GPU) per call."""

    def __init__(self, gan_mode: str = "lsgan") -> None:
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = {"lsgan": nn.MSELoss(), "vanilla": nn.BCEWithLogitsLoss()}[gan_mode]

    def forward(self, prediction: Tensor, target_is_real: bool) -> Tensor:
        target = self.real_label if target_is_real else self.fake_label
        return self.loss(prediction, target.expand_as(prediction))


class ImagePool:
    """Their pool: a python list, one image at a time, the same decisions. Unlike theirs it
    draws a coin and a slot for every image, also while the pool fills (and ignores them then):
    the same distribution, another stream of python's random numbers. That way the parity test
    can pass a `draw` that takes torch's generator in cgfw's order, for identical decisions."""

    def __init__(self, size: int, draw: PoolDraw = python_random_draw) -> None:
        self.size, self.draw, self.images = size, draw, []  # type: ignore[var-annotated]

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.detach().unsqueeze(0)
            if len(self.images) < self.size:
                self.draw(self.size)  # cgfw draws for every image; the result is unused here
                self.images.append(image)
                out.append(image)
                continue
            coin, slot = self.draw(self.size)
            if coin > 0.5:
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


@dataclass(frozen=True)
class Lambdas:
    """The authors' weights with one lambda for both cycles (their lambda_A = lambda_B), and the
    switches of the paper's ablations. Identity is relative, as their lambda_identity."""

    cycle: float = 10.0
    identity: float = 0.5
    gan: bool = True
    forward: bool = True  # cycle A -> B -> A
    backward: bool = True  # cycle B -> A -> B


def as_authors(net: nn.Module) -> None:
    """One of cgfw's paper networks made as their networks.py builds it: activations in place
    (nn.ReLU(True), nn.LeakyReLU(0.2, True)), and each module that names the authors' class it
    stands for (`authors_class`: the generators' first and output convs and the instance
    norms, which train another way on a CPU) made that class. cgfw activates out of place (the
    same values, less work for autograd); this loop must inherit neither. Only for those
    networks: one that reads an activation's input again would compute something else."""
    for module in net.modules():
        if isinstance(module, (nn.ReLU, nn.LeakyReLU)):
            module.inplace = True
        authors_class = getattr(type(module), "authors_class", None)
        if authors_class is not None:
            module.__class__ = authors_class  # the same parameters, the authors' forward


def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad = flag


class AuthorsLoop:
    """One authors'-style iteration per `step(real_a, real_b)` on the given networks."""

    def __init__(
        self,
        g_ab: nn.Module,
        g_ba: nn.Module,
        d_a: nn.Module,
        d_b: nn.Module,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lambdas: Lambdas = Lambdas(),
        pool_size: int = 50,
        gan_mode: str = "lsgan",
        draw: PoolDraw = python_random_draw,
    ) -> None:
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b
        self.lambdas = lambdas
        device = next(g_ab.parameters()).device
        self.gan_loss = GANLoss(gan_mode).to(device)
        self.l1 = nn.L1Loss()
        self.opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=lr, betas=betas)
        self.opt_d = torch.optim.Adam([*d_b.parameters(), *d_a.parameters()], lr=lr, betas=betas)
        self.pool_a, self.pool_b = ImagePool(pool_size, draw), ImagePool(pool_size, draw)

    def step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        lam = self.lambdas
        terms: dict[str, Tensor] = {}
        # forward()
        fake_b = self.g_ab(real_a)
        rec_a = self.g_ba(fake_b) if lam.forward else None
        fake_a = self.g_ba(real_b)
        rec_b = self.g_ab(fake_a) if lam.backward else None

        # backward_G(), with D frozen
        _set_requires_grad([self.d_b, self.d_a], False)
        self.opt_g.zero_grad()
        if lam.identity > 0 and lam.cycle > 0:
            idt_a = self.g_ab(real_b)  # their idt_A: G_A(B), should stay B
            terms["idt_b"] = self.l1(idt_a, real_b) * lam.cycle * lam.identity
            idt_b = self.g_ba(real_a)
            terms["idt_a"] = self.l1(idt_b, real_a) * lam.cycle * lam.identity
        if lam.gan:
            terms["g_ab_gan"] = self.gan_loss(self.d_b(fake_b), True)
            terms["g_ba_gan"] = self.gan_loss(self.d_a(fake_a), True)
        if rec_a is not None and lam.cycle > 0:
            terms["cycle_a"] = self.l1(rec_a, real_a) * lam.cycle
        if rec_b is not None and lam.cycle > 0:
            terms["cycle_b"] = self.l1(rec_b, real_b) * lam.cycle
        order = ("g_ab_gan", "g_ba_gan", "cycle_a", "cycle_b", "idt_b", "idt_a")  # their sum
        loss_g = sum(terms[k] for k in order if k in terms)
        assert isinstance(loss_g, Tensor)
        loss_g.backward()
        self.opt_g.step()
        terms["g_total"] = loss_g

        # backward_D_A(), backward_D_B(): with no GAN term D reaches no loss; neither loop trains it
        if lam.gan:
            _set_requires_grad([self.d_b, self.d_a], True)
            self.opt_d.zero_grad()
            terms["d_b"] = self._backward_d(self.d_b, real_b, self.pool_b.query(fake_b))
            terms["d_a"] = self._backward_d(self.d_a, real_a, self.pool_a.query(fake_a))
            self.opt_d.step()
        return {k: v.detach() for k, v in terms.items()}

    def _backward_d(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        loss_real = self.gan_loss(net_d(real), True)
        loss_fake = self.gan_loss(net_d(fake.detach()), False)
        loss_d = (loss_real + loss_fake) * 0.5
        loss_d.backward()
        return loss_d
