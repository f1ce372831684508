"""cgfw_field: gradient penalties against hand computations of their value and gradient,
DiffAugment, the WGAN loss, and the stabilisers inside the CycleGAN step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.model import build_model
from cgfw_field.augment import DiffAugmentOptions
from cgfw_field.diffaugment import DiffAugment, cutout, translation
from cgfw_field.gradients import R1, GpMix, WganGp, wgan
from cgfw_field.penalties import GpMixOptions, GpOptions, R1Options


class Quadratic(nn.Module):
    """Scores a * |x_p|^2 per pixel p: each image's mean score is s = a / HW sum_p |x_p|^2, so
    grad_x s = 2 a x / HW and |grad_x s|^2 = 4 a^2 |x|^2 / (HW)^2: penalties by hand."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x: Tensor) -> Tensor:
        return self.a * x.pow(2).sum(1, keepdim=True)


def images(seed: int) -> Tensor:
    return torch.rand(3, 3, 4, 5, generator=torch.Generator().manual_seed(seed)) * 2 - 1


HW = 4 * 5


def test_r1_value_and_gradient_by_hand() -> None:
    d, real = Quadratic(0.7), images(0)
    sq = real.pow(2).flatten(1).sum(1)  # |x_i|^2
    expected = 10.0 / 2 * (4 * 0.7**2 * sq / HW**2).mean()
    value = R1(R1Options(gamma=10.0))(d, real, images(1))
    assert torch.allclose(value, expected)
    value.backward()
    assert d.a.grad is not None
    assert torch.allclose(d.a.grad, 10.0 / 2 * (8 * 0.7 * sq / HW**2).mean())


def test_wgan_gp_is_one_centred_on_per_image_interpolates() -> None:
    d, real, fake = Quadratic(-1.3), images(0), images(1)
    torch.manual_seed(5)
    a = torch.rand(3, 1, 1, 1)
    mixed = a * real + (1 - a) * fake
    norm = 2 * 1.3 * mixed.flatten(1).norm(dim=1) / HW  # |grad| = 2 |a| |x| / HW
    expected = 10.0 * (norm - 1).pow(2).mean()
    torch.manual_seed(5)
    value = WganGp(GpOptions())(d, real, fake)
    assert torch.allclose(value, expected)
    value.backward()
    # d/da (norm - 1)^2 = 2 (norm - 1) * sign(a) * 2 |x| / HW
    grad = 10.0 * (2 * (norm - 1) * -2 * mixed.flatten(1).norm(dim=1) / HW).mean()
    assert d.a.grad is not None and torch.allclose(d.a.grad, grad)


def test_gp_mix_uses_one_mix_for_the_batch_and_is_zero_centred() -> None:
    d, real, fake = Quadratic(0.4), images(0), images(1)
    torch.manual_seed(3)
    a = torch.rand(())
    mixed = a * real + (1 - a) * fake
    norm = 2 * 0.4 * mixed.flatten(1).norm(dim=1) / HW
    torch.manual_seed(3)
    value = GpMix(GpMixOptions())(d, real, fake)
    assert torch.allclose(value, 0.01 * norm.pow(2).mean())
    value.backward()
    assert d.a.grad is not None
    assert torch.allclose(
        d.a.grad, 0.01 * (2 * norm * 2 * mixed.flatten(1).norm(dim=1) / HW).mean()
    )


@pytest.mark.parametrize("penalty", [R1(R1Options()), WganGp(GpOptions()), GpMix(GpMixOptions())])
def test_penalties_under_bf16_autocast_equal_their_fp32_value(penalty: Any) -> None:
    """They differentiate in fp32 whatever the autocast (squared bf16 gradients lose the small
    values a penalty is about)."""
    d = nn.Conv2d(3, 1, 3, padding=1)
    real, fake = images(0), images(1)
    torch.manual_seed(0)
    plain = penalty(d, real, fake)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = penalty(d, real, fake)
    assert low.dtype == torch.float32 and torch.equal(low, plain)


def test_wgan_loss() -> None:
    loss: Any = wgan(None)
    scores = torch.tensor([[1.0, 3.0]])
    assert loss(scores, True, True) == -2.0 and loss(scores, False, True) == 2.0


def test_diffaugment_is_differentiable_and_changes_each_image_its_own_way() -> None:
    x = images(0).requires_grad_(True)
    torch.manual_seed(0)
    out = DiffAugment(DiffAugmentOptions())(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.equal(out, x)
    assert DiffAugment(DiffAugmentOptions(p=0.0))(x).equal(x)  # p = 0: untouched
    with pytest.raises(ValueError, match="unknown"):
        DiffAugmentOptions(policy=["colour"])


def test_translation_shifts_in_zeros_and_cutout_zeroes_a_square() -> None:
    x = torch.ones(8, 3, 16, 16)
    torch.manual_seed(1)
    shifted = translation(x, 0.125)
    zeros = (shifted == 0).all(1).flatten(1).sum(1)
    assert zeros.max() <= 16 * 2 + 16 * 2 and zeros.max() > 0  # at most 2 rows and 2 columns
    cut = cutout(x, 0.5)
    holes = (cut == 0).all(1).flatten(1).sum(1)
    assert holes.max() == 8 * 8 and holes.min() > 0  # a square of half the side, clipped


def tiny(loaded: Loaded, recipe: Path, *overrides: str) -> Any:
    torch.manual_seed(0)
    return build_model(load(str(recipe), loaded.registry, overrides))


def batch() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(
        2, 3, 32, 32, generator=g
    ) * 2 - 1


def test_a_regularizer_is_added_to_each_discriminators_loss(
    loaded: Loaded, tiny_recipe: Path
) -> None:
    plain = tiny(loaded, tiny_recipe)
    penalised = tiny(loaded, tiny_recipe, "regularizer.name=r1", "regularizer.gamma=100.0")
    seen = []
    penalised.regularizer = (lambda f: lambda d, r, x: seen.append((d, r.shape)) or f(d, r, x))(
        penalised.regularizer
    )
    a, b = plain.step(*batch()), penalised.step(*batch())
    assert "reg_a" not in a and a.keys() | {"reg_a", "reg_b"} == b.keys()
    assert [d for d, _ in seen] == [penalised.d_b, penalised.d_a]
    assert b["reg_a"] > 0 and b["reg_b"] > 0
    assert torch.equal(a["d_a"], b["d_a"])  # the same first step until D's update
    assert not torch.equal(
        plain.d_a.state_dict()["0.weight"], penalised.d_a.state_dict()["0.weight"]
    )
    reason = penalised.graph_obstacle()
    assert reason is not None and "regularizer 'r1'" in reason


def test_the_augmentation_sees_every_image_a_discriminator_judges(
    loaded: Loaded, tiny_recipe: Path
) -> None:
    m = tiny(loaded, tiny_recipe, "augment.name=diffaugment")
    assert m.graph_obstacle() is None  # device-side draws only: capturable
    calls = []
    inner = m.augment
    m.augment = lambda x: calls.append(x.shape[0]) or inner(x)
    m.step(*batch())
    assert len(calls) == 2 + 4  # fake_b, fake_a in G's update; real and pooled fakes, both Ds


def test_spectral_norm_patchgan_trains_and_its_calls_run_apart(
    loaded: Loaded, tiny_recipe: Path
) -> None:
    m = tiny(loaded, tiny_recipe, "discriminator.norm='spectral'")
    convs = [x for x in m.d_a.modules() if isinstance(x, nn.Conv2d)]
    assert convs and all(hasattr(c, "parametrizations") for c in convs)
    assert not any(isinstance(x, nn.InstanceNorm2d) for x in m.d_a.modules())
    assert [n for n, net in m.networks.items() if not m.stacking.stacks(net)] == ["d_a", "d_b"]
    terms = m.step(*batch())
    assert all(torch.isfinite(t) for t in terms.values())


def test_each_stabiliser_is_one_word_to_ablate_and_says_what_stays_on(
    loaded: Loaded,
) -> None:
    from cgfw.recipe import load_data
    from cgfw.tools import ablate

    data, _ = load_data("emoji_stabilised", loaded.registry)
    everything = set(ablate.stabilizers_left(data, "pool", loaded.registry))
    assert everything == {
        "regularizer r1", "augment diffaugment", "discriminator spectral", "ema 0.999",
    }  # fmt: skip
    gone = {"ema": "ema 0.999", "r1": "regularizer r1", "sn": "discriminator spectral",
            "diffaug": "augment diffaugment"}  # fmt: skip
    for name, stabiliser in gone.items():
        assert set(ablate.stabilizers_left(data, name, loaded.registry)) == everything - {
            stabiliser
        }, name
    assert {"reg_a", "reg_b"} <= set(ablate.terms_left(data, "sn", loaded.registry))
    assert not {"reg_a", "reg_b"} & set(ablate.terms_left(data, "r1", loaded.registry))


def test_the_stabilised_recipe_trains_every_stabiliser_at_once(cli: Any, tmp_path: Path) -> None:
    args = [
        "--set", "train.max_iters=2", "--set", f"run.output_dir={tmp_path}",
        "--set", "train.device='cpu'", "--set", "eval.every=2", "--set", "eval.metrics=['psnr']",
    ]  # fmt: skip
    result = cli("run", "emoji_stabilised", *args)
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    final = (run_dir / "final_losses.json").read_text()
    assert '"reg_a"' in final and '"reg_b"' in final
