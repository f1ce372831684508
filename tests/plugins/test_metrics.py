"""The paper plugin's metrics: PSNR, SSIM and L1 through torchmetrics, on [-1, 1] images."""

from __future__ import annotations

import math

import pytest
import torch

from cgfw.plugins import Loaded


def score(loaded: Loaded, name: str, fake: torch.Tensor, real: torch.Tensor) -> float:
    metric = loaded.registry.get("metric", name).build({})
    metric.update(fake, real)
    value: float = metric.compute()
    return value


def images(seed: int = 0) -> torch.Tensor:
    """Smooth images in [-1, 1], 32 px (SSIM's 11 px window fits)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(4, 3, 8, 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=32, mode="bilinear") * 2 - 1


def noisy(real: torch.Tensor, sigma: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (real + sigma * torch.randn(real.shape, generator=g)).clamp(-1, 1)


def test_contract(loaded: Loaded) -> None:
    for name, higher in (("psnr", True), ("ssim", True), ("l1", False)):
        metric = loaded.registry.get("metric", name).build({})
        assert (metric.name, metric.paired, metric.higher_is_better) == (name, True, higher)


def test_identical_images(loaded: Loaded) -> None:
    real = images()
    assert score(loaded, "psnr", real, real) == math.inf  # torchmetrics: MSE 0 gives inf
    assert score(loaded, "ssim", real, real) == pytest.approx(1.0, abs=1e-5)
    assert score(loaded, "l1", real, real) == 0.0


def test_monotonic_in_noise(loaded: Loaded) -> None:
    real = images()
    fakes = [noisy(real, sigma) for sigma in (0.05, 0.2, 0.5)]
    psnr = [score(loaded, "psnr", f, real) for f in fakes]
    ssim = [score(loaded, "ssim", f, real) for f in fakes]
    l1 = [score(loaded, "l1", f, real) for f in fakes]
    assert psnr[0] > psnr[1] > psnr[2]
    assert ssim[0] > ssim[1] > ssim[2]
    assert l1[0] < l1[1] < l1[2]


def test_shifted_images_score_lower(loaded: Loaded) -> None:
    real = images()
    shifted = torch.roll(real, shifts=3, dims=-1)
    assert score(loaded, "psnr", shifted, real) < 40
    assert score(loaded, "ssim", shifted, real) < 0.99
    assert score(loaded, "l1", shifted, real) > 0


def test_range_is_mapped_to_unit(loaded: Loaded) -> None:
    black, white = torch.full((1, 3, 16, 16), -1.0), torch.ones(1, 3, 16, 16)
    assert score(loaded, "l1", black, white) == pytest.approx(1.0)  # [0, 1] scale
    assert score(loaded, "psnr", black, white) == pytest.approx(0.0, abs=1e-5)  # data_range 1


def test_reset_and_batches_accumulate(loaded: Loaded) -> None:
    real, fake = images(), noisy(images(), 0.2)
    whole = loaded.registry.get("metric", "l1").build({})
    whole.update(fake, real)
    split = loaded.registry.get("metric", "l1").build({})
    split.update(fake[:3], real[:3])  # a batch that is later forgotten
    split.reset()
    split.update(fake[:2], real[:2])
    split.update(fake[2:], real[2:])
    assert split.compute() == pytest.approx(whole.compute())
