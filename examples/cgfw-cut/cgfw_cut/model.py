"""CUT and FastCUT as a cgfw model: one generator, one discriminator, and PatchNCE on the
generator's encoder features through an MLP head built on the first batch. `CUT.step` follows
the official code's optimize_parameters: the discriminator first, then generator and head."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from cgfw import Build, Model, RecipeView, Resolved, Slot
from cgfw.errors import CgfwError
from cgfw_cut.patchnce import PatchHead, patch_nce


class GanKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, ge=0, description="lambda_GAN")


class CUTOptions(BaseModel):
    """[model] options; the defaults are the official code's --CUT_mode CUT."""

    model_config = ConfigDict(extra="forbid")
    lambda_nce: float = Field(1.0, ge=0, description="weight of PatchNCE (lambda_NCE)")
    nce_idt: bool = Field(True, description="PatchNCE also on G(real_b) vs real_b (identity)")
    nce_layers: list[int] = Field(
        default_factory=lambda: [0, 4, 8, 12, 16],
        description="indices of the generator's layers whose outputs PatchNCE compares",
    )
    num_patches: int = Field(256, ge=1, description="patches sampled per layer")
    nce_t: float = Field(0.07, gt=0, description="temperature")
    head_units: int = Field(256, ge=1, description="units of the two-layer MLP head (netF_nc)")
    flip_equivariance: bool = Field(
        False, description="flip the input half the time and the output's features back"
    )


class FastCUTOptions(CUTOptions):
    """--CUT_mode FastCUT: no identity term, lambda_NCE 10, flip-equivariance."""

    lambda_nce: float = Field(10.0, ge=0, description="weight of PatchNCE (lambda_NCE)")
    nce_idt: bool = Field(False, description="PatchNCE also on G(real_b) vs real_b (identity)")
    flip_equivariance: bool = Field(
        True, description="flip the input half the time and the output's features back"
    )


def _requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


class CUT(Model):
    slots: ClassVar[dict[str, Slot]] = {
        "data": Slot("dataset", "folder"),
        "schedule": Slot("schedule", "linear_decay"),
        "generator": Slot("generator", "resnet_aa"),
        "discriminator": Slot("discriminator", "patchgan_aa"),
        "losses.gan": Slot("gan_loss", "lsgan", GanKeys),
    }
    directions: ClassVar[dict[str, tuple[str, str]]] = {"a2b": ("g", "generator")}

    def __init__(self, options: CUTOptions, build: Build) -> None:
        super().__init__(options, build)
        self.o, self.build = options, build
        self.lambda_gan: float = build.keys("losses.gan").weight
        g = build.network("generator")
        if not isinstance(g, nn.Sequential) or max(options.nce_layers) >= len(g):
            raise CgfwError(
                f"model.nce_layers {options.nce_layers}: CUT reads encoder features by layer "
                "index, so the generator must be a torch.nn.Sequential with those layers "
                f"(generator '{build.resolved.components['generator'].name}' is not, or is "
                "shorter); use resnet_aa or the paper's resnet"
            )
        self.g: nn.Sequential = g
        self.d = build.network("discriminator")
        self.gan_loss: Callable[..., Tensor] = build.component("losses.gan")
        # A relativistic loss takes D's real and fake scores together (the hook's pair form).
        self.gan_pair = build.declares("losses.gan", "pair")
        self.networks = {"g": self.g, "d": self.d}
        self.optimizers = {"g": build.optimizer(self.g), "d": build.optimizer(self.d)}
        self.head: PatchHead | None = None  # built on the first batch (setup)

    @classmethod
    def terms(cls, resolved: Resolved) -> list[str]:
        o: Any = resolved.model_options
        wanted = {"g_gan": resolved.keys["losses.gan"].weight > 0, "nce": o.lambda_nce > 0}  # type: ignore[attr-defined]
        wanted |= {"nce_idt": o.nce_idt and o.lambda_nce > 0, "d": True}
        return [name for name, on in wanted.items() if on]

    def encode(self, x: Tensor) -> list[Tensor]:
        """The outputs of the generator's layers in nce_layers (it stops after the last)."""
        feats, last = [], max(self.o.nce_layers)
        for i, layer in enumerate(self.g):
            x = layer(x)
            if i in self.o.nce_layers:
                feats.append(x)
            if i == last:
                break
        return feats

    def setup(self, real_a: Tensor, real_b: Tensor) -> None:
        """The MLP head's input sizes are the encoder's channels: build it (and its optimizer)
        from the features of a first batch, as the official data_dependent_initialize does."""
        if self.head is not None or self.o.lambda_nce == 0:
            return
        with torch.no_grad(), self.rt.uncompiled():
            feats = self.encode(real_a[:1])
        self.head = self.build.adopt(PatchHead(self.o.head_units).build(feats))  # type: ignore[assignment]
        self.networks["f"] = self.head  # type: ignore[assignment]
        self.optimizers["f"] = self.build.optimizer(self.head)  # type: ignore[arg-type]

    @classmethod
    def graph_obstacle_for(cls, resolved: Resolved | RecipeView) -> str | None:
        return "is not available for CUT: it draws patch indices and flips on the host"

    def nce(self, src: Tensor, tgt: Tensor, flipped: bool) -> Tensor:
        """PatchNCE between an input and its output, averaged over the layers."""
        assert self.head is not None
        feat_q = self.encode(tgt)
        if flipped:
            feat_q = [f.flip(3) for f in feat_q]
        feat_k = self.encode(src)
        pooled_k, ids = self.head(feat_k, self.o.num_patches)
        pooled_q, _ = self.head(feat_q, self.o.num_patches, ids)
        total = sum(
            (patch_nce(q, k, len(src), self.o.nce_t) * self.o.lambda_nce).mean()
            for q, k in zip(pooled_q, pooled_k, strict=True)
        )
        return total / len(self.o.nce_layers)  # type: ignore[return-value]

    def step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        o, rt, n = self.o, self.rt, len(real_a)
        with rt.autocast():
            # One generator call on A, and on B for the identity term, optionally flipped.
            real = torch.cat([real_a, real_b]) if o.nce_idt else real_a
            flipped = o.flip_equivariance and bool(torch.rand(()) < 0.5)
            fake = self.g(real.flip(3) if flipped else real)
            fake_b, idt_b = fake[:n], fake[n:]

            # The discriminator first, on the current fakes (no pool).
            _requires_grad(self.d, True)
            if self.gan_pair:
                terms = {"d": 0.5 * self.gan_loss(self.d(real_b), self.d(fake_b.detach()), True)}
            else:
                terms = {
                    "d": 0.5
                    * (
                        self.gan_loss(self.d(fake_b.detach()), False, True)
                        + self.gan_loss(self.d(real_b), True, True)
                    )
                }
        self.optimizers["d"].zero_grad(set_to_none=True)
        rt.optimizer_step(terms["d"], self.optimizers["d"])

        # Then the generator and the head: GAN + PatchNCE (+ identity PatchNCE, averaged).
        _requires_grad(self.d, False)
        with rt.autocast():
            loss_g = torch.zeros((), device=real_a.device)
            if self.lambda_gan > 0:
                if self.gan_pair:  # the frozen D's scores of the reals too (no gradient)
                    judged = self.d(real_b), self.d(fake_b)
                    terms["g_gan"] = self.lambda_gan * self.gan_loss(*judged, False)
                else:
                    terms["g_gan"] = self.lambda_gan * self.gan_loss(self.d(fake_b), True, False)
                loss_g = loss_g + terms["g_gan"]
            if o.lambda_nce > 0:
                terms["nce"] = self.nce(real_a, fake_b, flipped)
                if o.nce_idt:
                    terms["nce_idt"] = self.nce(real_b, idt_b, flipped)
                    loss_g = loss_g + (terms["nce"] + terms["nce_idt"]) * 0.5
                else:
                    loss_g = loss_g + terms["nce"]
        opts = [self.optimizers[k] for k in ("g", "f") if k in self.optimizers]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        rt.optimizer_step(loss_g, *opts)
        _requires_grad(self.d, True)
        terms["g_total"] = loss_g
        return {k: v.detach().float() for k, v in terms.items()}

    @torch.no_grad()
    def sample_rows(self, real_a: Tensor, real_b: Tensor) -> list[Tensor]:
        """real A, G(A); real B, G(B) (what the identity term keeps alike)."""
        return [real_a, self.g(real_a), real_b, self.g(real_b)]
