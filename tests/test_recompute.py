"""train.activation_checkpointing: the networks recompute their activations in the backward
pass, with the same losses and gradients as without it (dropout included), and only in
training; a norm with running statistics and a slot that is no network are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.loop import train_iteration
from cgfw.training.model import Model, Speed, build_model, build_network
from cgfw.training.progress import LossLog
from cgfw.training.recompute import Recomputed

# Dropout on: the recomputed forward must draw the masks the first forward drew.
DROPOUT = ("generator.dropout=true",)


def _model(loaded: Loaded, recipe: Path, recompute: bool | tuple[str, ...]) -> Model:
    resolved = load(str(recipe), loaded.registry, DROPOUT)
    torch.manual_seed(0)
    return build_model(resolved, speed=Speed("fp32", False, "off", False, recompute))


def _train(m: Model, iterations: int, run_dir: Path) -> list[dict[str, float]]:
    """Steps on fixed batches; the losses each step returned."""
    torch.manual_seed(1)  # the step's own draws (dropout, the image pool)
    g = torch.Generator().manual_seed(0)
    terms: list[dict[str, float]] = []
    log: Any = LossLog(None, Console(quiet=True), iterations, 0)
    original = log.add
    log.add = lambda t: (terms.append({k: float(v) for k, v in t.items()}), original(t))
    for i in range(iterations):
        real_a, real_b = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
        train_iteration(m.step, m, real_a, real_b, log, i + 1, run_dir)
    return terms


def test_recomputed_networks_train_to_the_same_losses_and_weights(
    loaded: Loaded, tiny_recipe: Path, tmp_path: Path
) -> None:
    plain, recomputed = _model(loaded, tiny_recipe, False), _model(loaded, tiny_recipe, True)
    assert isinstance(recomputed.networks["g_ab"], Recomputed)
    # Recomputed discriminators take a call each (a paired call would skip the recomputing);
    # the plain ones too here, so that the two runs differ by recomputing alone.
    assert recomputed.stacking.pair is None  # type: ignore[attr-defined]
    plain.stacking.pair = None  # type: ignore[attr-defined]
    assert _train(plain, 3, tmp_path) == _train(recomputed, 3, tmp_path)
    for name, net in plain.networks.items():
        for (key, a), b in zip(
            net.state_dict().items(), recomputed.networks[name].state_dict().values(), strict=True
        ):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=f"{name}.{key}")


def test_the_forward_really_runs_again_in_the_backward_pass(
    loaded: Loaded, tiny_recipe: Path, tmp_path: Path
) -> None:
    """Only the slots named: the generators' forwards run again, the discriminators' do not."""
    counts: dict[str, dict[str, int]] = {}
    for label, recompute in (("plain", False), ("generator", ("generator",))):
        m = _model(loaded, tiny_recipe, recompute)
        calls = counts.setdefault(label, {"g_ab": 0, "d_b": 0})
        for name in calls:
            inner = next(iter(m.networks[name].children()))  # the first layer of the network
            inner.register_forward_hook(lambda *_, n=name, c=calls: c.__setitem__(n, c[n] + 1))
        _train(m, 1, tmp_path)
    assert counts["generator"]["g_ab"] > counts["plain"]["g_ab"]
    assert counts["generator"]["d_b"] == counts["plain"]["d_b"]


def test_networks_built_for_translation_or_export_are_plain(
    loaded: Loaded, tiny_recipe: Path
) -> None:
    resolved = load(str(tiny_recipe), loaded.registry, ("train.activation_checkpointing=true",))
    assert not isinstance(build_network(resolved, "generator"), Recomputed)


def test_batch_norm_with_running_statistics_is_refused_naming_the_slot(
    loaded: Loaded, tiny_recipe: Path
) -> None:
    resolved = load(str(tiny_recipe), loaded.registry, ("discriminator.norm=batch",))
    with pytest.raises(CgfwError, match=r"discriminator has BatchNorm2d.*running statistics"):
        build_model(resolved, speed=Speed("fp32", False, "off", False, True))


def test_a_slot_that_is_no_network_is_refused_with_the_networks_named(
    loaded: Loaded, tiny_recipe: Path
) -> None:
    bad = ("train.activation_checkpointing=['genrator']",)
    with pytest.raises(CgfwError, match=r"'genrator' is no network slot.*did you mean 'generator'"):
        load(str(tiny_recipe), loaded.registry, bad)
