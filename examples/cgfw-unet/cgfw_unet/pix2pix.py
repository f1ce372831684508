"""pix2pix (Isola et al. 2017), the CycleGAN authors' paired model, as a cgfw model: a U-Net
generator, a PatchGAN that judges input and output together (6 channels), a vanilla GAN loss
and L1 to the target x 100, no image pool. `Pix2Pix.step` follows their pix2pix_model.py:
the discriminator first (fake, then real, halved), then the generator."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from cgfw import Build, Model, Slot
from cgfw.errors import CgfwError


class GanKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, ge=0, description="weight of the adversarial term")


class L1Keys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(100.0, ge=0, description="lambda_L1: the authors' 100")


class Pix2PixOptions(BaseModel):
    """The model has no options of its own; its weights are in [losses.*]."""

    model_config = ConfigDict(extra="forbid")


def _requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


class Pix2Pix(Model):
    slots: ClassVar[dict[str, Slot]] = {
        "data": Slot("dataset", "folder"),
        "schedule": Slot("schedule", "linear_decay"),
        "generator": Slot("generator", "unet_256"),
        "discriminator": Slot("discriminator", "patchgan"),
        "losses.gan": Slot("gan_loss", "bce", GanKeys),  # the authors' --gan_mode vanilla
        "losses.l1": Slot("reconstruction_loss", "l1", L1Keys),
    }
    directions: ClassVar[dict[str, tuple[str, str]]] = {"a2b": ("g", "generator")}
    needs_pairs = "model 'pix2pix'"

    @classmethod
    def network_channels(cls, path: str, kind: str, channels: int) -> dict[str, int]:
        """The conditional discriminator judges input and output stacked on channels."""
        if kind == "discriminator":
            return {"in_channels": 2 * channels}
        return super().network_channels(path, kind, channels)

    def __init__(self, options: Pix2PixOptions, build: Build) -> None:
        super().__init__(options, build)
        self.g = build.network("generator")
        self.d = build.network("discriminator")
        self.networks = {"g": self.g, "d": self.d}
        self.optimizers = {"g": build.optimizer(self.g), "d": build.optimizer(self.d)}
        self.gan_loss: Callable[..., Tensor] = build.component("losses.gan")
        # A relativistic loss takes D's real and fake scores together (the hook's pair form).
        self.gan_pair = build.declares("losses.gan", "pair")
        self.l1: Callable[[Tensor, Tensor], Tensor] = build.component("losses.l1")
        self.gan_weight: float = build.keys("losses.gan").weight
        self.l1_weight: float = build.keys("losses.l1").weight
        self.d_name = build.resolved.components["discriminator"].name

    def setup(self, real_a: Tensor, real_b: Tensor) -> None:
        """The conditional discriminator must take input and output stacked on channels."""
        try:
            with torch.no_grad(), self.rt.uncompiled():
                self.d(torch.cat([real_a[:1], real_b[:1]], 1))
        except RuntimeError as exc:
            raise CgfwError(
                f"discriminator '{self.d_name}': pix2pix judges the input and the output "
                "together, 6 channels; set discriminator.in_channels = 6 "
                f"({str(exc).splitlines()[0][:120]})"
            ) from None

    def step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        rt = self.rt
        with rt.autocast():
            fake_b = self.g(real_a)
            # The discriminator on (input, output) pairs: the fake one detached, then the real.
            _requires_grad(self.d, True)
            fake_ab = torch.cat([real_a, fake_b], 1)
            judged_fake = self.d(fake_ab.detach())
            judged_real = self.d(torch.cat([real_a, real_b], 1))
            if self.gan_pair:
                terms = {"d": 0.5 * self.gan_loss(judged_real, judged_fake, True)}
            else:
                terms = {
                    "d": 0.5
                    * (
                        self.gan_loss(judged_fake, False, True)
                        + self.gan_loss(judged_real, True, True)
                    )
                }
        self.optimizers["d"].zero_grad(set_to_none=True)
        rt.optimizer_step(terms["d"], self.optimizers["d"])

        _requires_grad(self.d, False)
        with rt.autocast():
            if self.gan_pair:  # the frozen D's scores of the real pair too (no gradient)
                judged = self.d(torch.cat([real_a, real_b], 1)), self.d(fake_ab)
                terms["g_gan"] = self.gan_weight * self.gan_loss(*judged, False)
            else:
                terms["g_gan"] = self.gan_weight * self.gan_loss(self.d(fake_ab), True, False)
            terms["l1"] = self.l1_weight * self.l1(fake_b, real_b)
            loss_g = terms["g_gan"] + terms["l1"]
        self.optimizers["g"].zero_grad(set_to_none=True)
        rt.optimizer_step(loss_g, self.optimizers["g"])
        _requires_grad(self.d, True)
        terms["g_total"] = loss_g
        return {k: v.detach().float() for k, v in terms.items()}
