"""Paired calls (issue 23): the CycleGAN's two discriminators run as one network of twice the
channels, its convs grouped in two, where that is faster (training eagerly on a CPU, NCHW).
One paired call must compute what a call of each computes, forward and backward; only
networks of one structure, of modules whose paired form is known, may pair; and a hook, calls
apart or another device keep the calls apart."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.model import Speed, build_model
from cgfw_paper.cyclegan import CycleGAN
from cgfw_paper.discriminators import PatchOptions, PixelOptions
from cgfw_paper.nets import patchgan, pixel
from cgfw_paper.stacking import Stacking, as_one, runs_as_one


def close(a: torch.Tensor, b: torch.Tensor, name: str, scale: float = 0.0) -> None:
    # fp32 rounding of sums over up to a thousand terms, relative to the largest value (or to
    # `scale`: a conv's bias before instance norm has a gradient of zero, bar rounding)
    assert (a - b).abs().max() <= 1e-5 * max(float(b.abs().max()), scale), name


def two(make, opts) -> tuple[nn.Module, nn.Module]:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    first = make(opts)
    torch.manual_seed(1)  # other weights, so that swapping them would show
    return first, make(opts)


@pytest.mark.parametrize(
    ("make", "opts"),
    [(patchgan, PatchOptions(ndf=8, n_layers=2)), (pixel, PixelOptions(ndf=8))],
    ids=["patchgan", "pixel"],
)
def test_two_networks_as_one_compute_what_each_computes(make, opts) -> None:  # type: ignore[no-untyped-def]
    first, second = two(make, opts)
    assert runs_as_one(first, second)
    g = torch.Generator().manual_seed(2)
    x, y = (torch.randn(3, 3, 32, 32, generator=g) for _ in range(2))
    results = []
    for paired in (True, False):
        xi, yi = x.clone().requires_grad_(), y.clone().requires_grad_()
        first.zero_grad(set_to_none=True)
        second.zero_grad(set_to_none=True)
        outs = as_one(first, second, xi, yi) if paired else (first(xi), second(yi))
        # a loss of each output with its own weight, so that each gradient is its own
        (outs[0].square().mean() + 3 * outs[1].abs().mean()).backward()
        grads = [p.grad for p in [*first.parameters(), *second.parameters()]]
        assert xi.grad is not None and yi.grad is not None and all(g is not None for g in grads)
        results.append([*(o.detach() for o in outs), xi.grad, yi.grad, *grads])
    names = ["first's output", "second's output", "x grad", "y grad"]
    names += [f"parameter {i} grad" for i in range(len(results[0]) - 4)]
    scale = max(float(g.abs().max()) for g in results[1][4:])  # the largest parameter gradient
    for i, (name, a, b) in enumerate(zip(names, *results, strict=True)):
        close(a, b, name, scale if i >= 4 else 0.0)


def test_only_networks_of_one_structure_run_as_one() -> None:
    patch = PatchOptions(ndf=8, n_layers=2)
    assert not runs_as_one(patchgan(patch), patchgan(PatchOptions(ndf=16, n_layers=2)))
    assert not runs_as_one(patchgan(patch), patchgan(PatchOptions(ndf=8, n_layers=3)))
    assert not runs_as_one(patchgan(patch), pixel(PixelOptions(ndf=8)))
    spectral = PatchOptions(ndf=8, n_layers=2, norm="spectral")  # a parametrized weight
    assert not runs_as_one(patchgan(spectral), patchgan(spectral))
    batch = PatchOptions(ndf=8, n_layers=2, norm="batch")  # statistics over the batch
    assert not runs_as_one(patchgan(batch), patchgan(batch))
    unknown = [nn.Conv2d(3, 8, 3), nn.GELU()]  # a module whose paired form is not known
    assert not runs_as_one(nn.Sequential(*unknown), nn.Sequential(*unknown))
    assert runs_as_one(patchgan(patch), patchgan(patch))


def test_a_hook_keeps_the_calls_apart() -> None:
    first, second = two(patchgan, PatchOptions(ndf=8, n_layers=2))
    stacking = Stacking(True, [first, second], (first, second))
    assert stacking.pairs(first, second) and not stacking.pairs(second, first)
    handle = second[3].register_forward_hook(lambda *_: None)  # e.g. a feature-matching tap
    assert not stacking.pairs(first, second)
    handle.remove()
    assert stacking.pairs(first, second)
    assert not Stacking(False, [first, second], (first, second)).pairs(first, second)


def model(loaded: Loaded, tiny_recipe, *overrides: str) -> CycleGAN:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    resolved = load(str(tiny_recipe), loaded.registry, list(overrides))
    cpu = torch.device("cpu")
    m = build_model(resolved, cpu, Speed.resolve(resolved.recipe.train, cpu))
    assert isinstance(m, CycleGAN)
    return m


def test_the_step_pairs_the_discriminators_on_a_cpu_only(  # type: ignore[no-untyped-def]
    loaded, tiny_recipe, monkeypatch
) -> None:
    import cgfw_paper.stacking as stacking

    calls: list[int] = []
    original = stacking.as_one
    monkeypatch.setattr(stacking, "as_one", lambda *a: calls.append(1) or original(*a))
    g = torch.Generator().manual_seed(0)
    real_a, real_b = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
    m = model(loaded, tiny_recipe)
    m.step(real_a, real_b)
    assert len(calls) == 2  # the generators' losses, then the discriminators' own
    # calls apart (the authors' arithmetic) and channels_last keep a call per discriminator
    for setting in ("train.stack_calls=false", "train.channels_last=true"):
        calls.clear()
        model(loaded, tiny_recipe, setting).step(real_a, real_b)
        assert not calls, setting
