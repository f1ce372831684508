"""Named ablations of the stabilisers, for `cgfw ablate --disable NAME` on a recipe that uses
them (emoji_stabilised)."""

from __future__ import annotations

from typing import Any

from cgfw import Register, hookimpl

ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "ema": ("no generator EMA: samples and scores use the trained weights", {"train.ema": 0.0}),
    "r1": ("no gradient penalty (any regularizer)", {"regularizer": None}),
    "sn": ("no spectral norm: the PatchGAN's instance norm", {"discriminator.norm": "instance"}),
    "diffaug": ("no discriminator augmentation", {"augment": None}),
}


class Edits:
    """The ablation's recipe edit."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides

    def __call__(self, _options: object) -> dict[str, Any]:
        return dict(self.overrides)


@hookimpl
def register_ablations(register: Register) -> None:
    for name, (summary, overrides) in ABLATIONS.items():
        register(name, Edits(overrides), None, summary, base="emoji_stabilised")  # shown on
