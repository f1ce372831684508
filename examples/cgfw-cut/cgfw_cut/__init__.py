"""cgfw-cut: CUT and FastCUT (Park et al. 2020, "Contrastive Learning for Unpaired
Image-to-Image Translation") for cgfw, as a third-party plugin.

Installed, it adds the models ``cut`` and ``fastcut`` (``[model] name = "cut"``), the
anti-aliased generator ``resnet_aa`` and discriminator ``patchgan_aa`` of the official code,
and the recipes ``cut_emoji`` and ``fastcut_emoji``. Defaults are those of the official code
(taesungp/contrastive-unpaired-translation): PatchNCE on generator layers 0, 4, 8, 12, 16, 256
patches per layer, temperature 0.07, a two-layer MLP head of 256 units; CUT: lambda_NCE 1 with
the identity term, 200 + 200 epochs; FastCUT: lambda_NCE 10, flip-equivariance, 150 + 50.
"""

from __future__ import annotations

from importlib.resources import files

from cgfw import Register, hookimpl
from cgfw_cut.model import CUT, CUTOptions, FastCUTOptions
from cgfw_cut.networks import DiscriminatorOptions, GeneratorOptions, patchgan_aa, resnet_aa
from cgfw_cut.patchnce import PatchHead, patch_nce

__version__ = "0.1.0"
__all__ = [
    "CUT",
    "CUTOptions",
    "FastCUTOptions",
    "PatchHead",
    "patch_nce",
    "patchgan_aa",
    "resnet_aa",
]


@hookimpl
def register_models(register: Register) -> None:
    register("cut", CUT, CUTOptions, "CUT (Park et al. 2020): one generator, PatchNCE + identity")
    register(
        "fastcut", CUT, FastCUTOptions, "FastCUT: PatchNCE x 10, flip-equivariance, no identity"
    )


@hookimpl
def register_generators(register: Register) -> None:
    register(
        "resnet_aa",
        resnet_aa,
        GeneratorOptions,
        "CUT's ResNet generator: anti-aliased down- and upsampling (official defaults)",
    )


@hookimpl
def register_discriminators(register: Register) -> None:
    register(
        "patchgan_aa",
        patchgan_aa,
        DiscriminatorOptions,
        "CUT's PatchGAN: anti-aliased downsampling (official defaults)",
    )


@hookimpl
def register_recipes(register: Register) -> None:
    for name in ("cut", "fastcut", "cut_emoji", "fastcut_emoji"):
        path = files("cgfw_cut") / "recipes" / f"{name}.toml"
        first = path.read_text(encoding="utf-8").splitlines()[0]
        register(name, lambda _opts, p=path: p, None, first.lstrip("# "))
