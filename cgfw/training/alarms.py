"""Alarms for runs that go wrong in the ways the authors' issue tracker knows best (their
issue 806: "If D's loss is almost 0 for a while, your training might have collapsed"; 874, 626
and 924: generators that became the identity; 91, 1301 and 744: colour inversion). Each is a
warning on the console and a text entry in the trackers (TensorBoard's TEXT tab), said when the
condition starts and again only after it has cleared; the run goes on. Thresholds are the
recipe's [alarms] keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from rich.console import Console
from torch import Tensor

from cgfw.recipe.schema import AlarmsSection
from cgfw.training.tracking import Tracking

# Rec. 601 luma weights: the inversion alarm compares brightness, not colour.
LUMA = (0.299, 0.587, 0.114)


def is_discriminator_term(name: str) -> bool:
    """The loss terms of discriminators, by the engine's naming rule: "d" or "d_<something>"
    (the CycleGAN's d_a and d_b, CUT's and pix2pix's d)."""
    return name == "d" or name.startswith("d_")


def luminance(images: Tensor) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> (N, H*W); grey images are their own luminance."""
    if images.shape[1] == 3:
        weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device)
        images = (images * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
    return images.mean(1).flatten(1)


def correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation per row; 0 for a flat row (no brightness to follow)."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    norm = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norm > 0, (a * b).sum(1) / norm.clamp_min(1e-12), torch.zeros_like(norm))


@dataclass
class Alarms:
    cfg: AlarmsSection
    console: Console
    tracking: Tracking | None
    low_windows: dict[str, int] = field(default_factory=dict)  # windows in a row below
    sounding: set[str] = field(default_factory=set)
    said: list[str] = field(default_factory=list)  # every alarm raised, for tests and reports

    def after_log(self, iteration: int, averages: Mapping[str, float]) -> None:
        """Each discriminator's loss averaged over the log window just closed."""
        for name, value in averages.items():
            if not is_discriminator_term(name):
                continue
            low = value < self.cfg.d_loss_below
            self.low_windows[name] = self.low_windows.get(name, 0) + 1 if low else 0
            self._set(
                f"collapse:{name}",
                self.low_windows[name] >= self.cfg.windows,
                iteration,
                f"discriminator loss {name} has stayed below alarms.d_loss_below = "
                f"{self.cfg.d_loss_below} for {self.low_windows[name]} log windows (now "
                f"{value:.2g}): the discriminator wins outright and the generators learn "
                "nothing from it; training may have collapsed (lower optimizer.lr, add a "
                "regularizer or augment, or check the data)",
            )

    def after_samples(self, iteration: int, direction: str, real: Tensor, fake: Tensor) -> None:
        """The fixed sample images of one direction and their translations."""
        real, fake = real.detach().float(), fake.detach().float()
        change = (fake - real).abs().mean().item()
        self._set(
            f"identity:{direction}",
            change < self.cfg.identity_below,
            iteration,
            f"{direction}: the translations differ from their inputs by {change:.3g} on average "
            f"(below alarms.identity_below = {self.cfg.identity_below}): the generator has "
            "become the identity, as doing nothing would (lower losses.identity.weight or "
            "losses.cycle.weight, or raise losses.gan.weight)",
        )
        if real.shape[1] != fake.shape[1]:
            return
        corr = correlation(luminance(real), luminance(fake)).mean().item()
        self._set(
            f"inversion:{direction}",
            corr < self.cfg.inversion_below,
            iteration,
            f"{direction}: the translations' brightness follows the inputs' inverted "
            f"(correlation {corr:.2f}, below alarms.inversion_below = "
            f"{self.cfg.inversion_below}): a colour inversion, which the cycle loss cannot "
            "tell from a faithful translation (try data.color_jitter, or a new seed)",
        )

    def _set(self, key: str, on: bool, iteration: int, message: str) -> None:
        if not self.cfg.enabled:
            return
        if not on:
            self.sounding.discard(key)
            return
        if key in self.sounding:
            return
        self.sounding.add(key)
        self.said.append(key)
        self.console.print(f"[yellow]warning at iteration {iteration}: {message}[/yellow]")
        if self.tracking is not None:
            self.tracking.text(f"alarms/{key.split(':')[0]}", message, iteration)
