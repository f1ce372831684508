"""cgfw_field's ralsgan, the pair form of the GAN-loss hook: its value and gradients for D and
G against hand computations, and the CycleGAN step calling it with the real and fake scores of
the same discriminator in both players' updates (D's scores of the reals in G's too)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.model import build_model
from cgfw_field.relativistic import RaLSGAN
from tests.conftest import run_dirs


def grads(loss: RaLSGAN, real: Tensor, fake: Tensor, for_d: bool) -> tuple[Tensor, Tensor, Tensor]:
    real, fake = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
    value = loss(real, fake, for_d)
    value.backward()
    assert real.grad is not None and fake.grad is not None
    return value.detach(), real.grad, fake.grad


def test_ralsgan_value_and_gradient_by_hand_on_two_scores_each() -> None:
    """real (1, 3), fake (0, 2): mean real 2, mean fake 1.
    D: reals - 1 - 1 = (-1, 1), fakes - 2 + 1 = (-1, 1): 1 + 1 = 2; d/dr_k = (2/2)(r_k - mean_f
    - 1) - (2/2) mean(f - mean_r + 1) = (-1, 1), and likewise d/df = (-1, 1).
    G: reals - 1 + 1 = (1, 3), fakes - 2 - 1 = (-3, -1): 5 + 5 = 10; d/dr = (1, 3) - mean(-3,
    -1) = (3, 5); d/df = (-3, -1) - mean(1, 3) = (-5, -3)."""
    real, fake = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 2.0]])
    value, d_real, d_fake = grads(RaLSGAN(), real, fake, True)
    assert value.item() == 2.0
    assert d_real.tolist() == [[-1.0, 1.0]] and d_fake.tolist() == [[-1.0, 1.0]]
    value, d_real, d_fake = grads(RaLSGAN(), real, fake, False)
    assert value.item() == 10.0
    assert d_real.tolist() == [[3.0, 5.0]] and d_fake.tolist() == [[-5.0, -3.0]]


@pytest.mark.parametrize("for_d", [True, False])
def test_ralsgan_averages_over_every_patch_score_of_the_batch(for_d: bool) -> None:
    """PatchGAN-shaped scores of other sizes for real (n = 8) and fake (m = 12): with a = reals
    - mean fake - t and b = fakes - mean real + t (t = 1 for D, -1 for G), the loss is mean a^2
    + mean b^2, d/dr = 2/n (a - mean b) and d/df = 2/m (b - mean a)."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 1, 2, 2, generator=g), torch.randn(3, 1, 2, 2, generator=g)
    t = 1.0 if for_d else -1.0
    a, b = real - fake.mean() - t, fake - real.mean() + t
    value, d_real, d_fake = grads(RaLSGAN(), real, fake, for_d)
    assert torch.allclose(value, a.pow(2).mean() + b.pow(2).mean())
    assert torch.allclose(d_real, 2 / 8 * (a - b.mean()))
    assert torch.allclose(d_fake, 2 / 12 * (b - a.mean()))


def test_ralsgan_is_fp32_under_bf16_autocast() -> None:
    real, fake = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 2.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = RaLSGAN()(real.bfloat16(), fake.bfloat16(), True)
    assert value.dtype == torch.float32 and value.item() == 2.0


def test_only_a_loss_registered_as_a_pair_is_called_with_pairs(loaded: Loaded) -> None:
    losses = {n: loaded.registry.get("gan_loss", n) for n in loaded.registry.names("gan_loss")}
    assert {n for n, c in losses.items() if c.info("pair", False)} == {"ralsgan"}
    with pytest.raises(CgfwError, match=r"losses\.gan\.name = 'ralsgan' .*pick a loss"):
        RaLSGAN()(torch.zeros(2), True, False)  # a model that knows only the one-score form


class Spy:
    """The pair loss, recording each call's scores and player."""

    pair = True

    def __init__(self, loss: Any) -> None:
        self.loss, self.calls = loss, []  # type: ignore[var-annotated]

    def __call__(self, real_scores: Tensor, fake_scores: Tensor, for_d: bool) -> Tensor:
        self.calls.append((real_scores.detach().clone(), fake_scores.detach().clone(), for_d))
        return self.loss(real_scores, fake_scores, for_d)  # type: ignore[no-any-return]


def check_one_d_step(spy: Spy, before: Tensor, after: Tensor, terms: dict[str, Tensor]) -> None:
    """A one-discriminator model's step (CUT, pix2pix) with `spy` as its GAN loss: D's update
    first, with the scores of D `before` it; then G's, with those of D `after` it."""
    assert [for_d for *_, for_d in spy.calls] == [True, False]
    (d_real, d_fake, _), (g_real, g_fake, _) = spy.calls
    assert torch.allclose(d_real, before, atol=1e-6) and torch.allclose(g_real, after, atol=1e-6)
    assert not torch.allclose(before, after) and not torch.allclose(g_real, g_fake)
    assert torch.allclose(terms["d"], 0.5 * RaLSGAN()(d_real, d_fake, True))
    assert torch.allclose(terms["g_gan"], RaLSGAN()(g_real, g_fake, False))
    assert all(torch.isfinite(t) for t in terms.values())


def batch() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))  # type: ignore[return-value]


def test_cyclegan_gives_ralsgan_each_discriminators_real_scores_in_both_updates(
    loaded: Loaded, tiny_recipe: Path
) -> None:
    torch.manual_seed(0)
    m: Any = build_model(load(str(tiny_recipe), loaded.registry, ["losses.gan.name=ralsgan"]))
    assert m.gan_pair
    m.gan_loss = spy = Spy(m.gan_loss)
    real_a, real_b = batch()
    with torch.no_grad():  # D is updated after both players' losses: these are the step's scores
        d_b_real, d_a_real = m.d_b(real_b), m.d_a(real_a)
    terms = m.step(real_a, real_b)
    assert [for_d for *_, for_d in spy.calls] == [False, False, True, True]
    # G's updates (g_ab against d_b, g_ba against d_a), then D's (d_b, then d_a).
    for (real, fake, _), expected in zip(spy.calls, [d_b_real, d_a_real] * 2, strict=True):
        assert torch.allclose(real, expected, atol=1e-6) and real.shape == fake.shape
        assert not torch.allclose(real, fake)
    g_ab, g_ba, d_b, d_a = (RaLSGAN()(r, f, d) for r, f, d in spy.calls)
    assert torch.allclose(terms["g_ab_gan"], g_ab) and torch.allclose(terms["g_ba_gan"], g_ba)
    assert torch.allclose(terms["d_b"], 0.5 * d_b) and torch.allclose(terms["d_a"], 0.5 * d_a)
    assert all(torch.isfinite(t) for t in terms.values())


def test_a_cyclegan_trains_with_ralsgan(cli: Any, tiny_recipe: Path) -> None:
    result = cli("run", tiny_recipe, "--set", "losses.gan.name=ralsgan")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    final = json.loads((run_dir / "final_losses.json").read_text())
    assert {"g_ab_gan", "g_ba_gan", "d_a", "d_b"} <= final.keys()
    assert all(math.isfinite(v) for v in final.values())
