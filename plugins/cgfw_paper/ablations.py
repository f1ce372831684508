"""The paper's ablations (its Table 4 and the identity / pool studies) as named recipe edits."""

from __future__ import annotations

from typing import Any

from cgfw import Register, hookimpl

ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "identity": ("no identity loss", {"losses.identity.weight": 0.0}),
    "pool": ("no image pool", {"buffer": {"name": "none"}}),
    "gan": ("cycle alone: no adversarial loss", {"losses.gan.weight": 0.0}),
    # lambda = 0, as in the authors' code, where the identity weight is lambda_identity x lambda:
    # without it "GAN alone" would keep the identity loss.
    "cycle": ("GAN alone: no cycle loss, so no identity loss", {"losses.cycle.weight": 0.0}),
    "cycle_backward": ("GAN + forward cycle (A -> B -> A)", {"losses.cycle.backward": False}),
    "cycle_forward": ("GAN + backward cycle (B -> A -> B)", {"losses.cycle.forward": False}),
}


def _edits(overrides: dict[str, Any]) -> Any:
    return lambda _opts: dict(overrides)


@hookimpl
def register_ablations(register: Register) -> None:
    for name, (summary, overrides) in ABLATIONS.items():
        register(name, _edits(overrides), None, summary)
