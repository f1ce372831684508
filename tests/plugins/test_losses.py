import math

import pytest
import torch

from cgfw_paper.criteria import BCELoss, LSGANLoss, hinge, l1
from cgfw_paper.losses import LabelOptions

SCORES = torch.tensor([0.5, -1.0, 2.0])


def test_lsgan_is_mse_to_the_targets() -> None:
    loss = LSGANLoss(LabelOptions())
    assert loss(SCORES, True).item() == pytest.approx((0.25 + 4 + 1) / 3)
    assert loss(SCORES, False).item() == pytest.approx((0.25 + 1 + 4) / 3)


def test_bce_on_logits() -> None:
    loss = BCELoss(LabelOptions())
    assert loss(torch.zeros(4), True).item() == pytest.approx(math.log(2))
    expected = sum(math.log1p(math.exp(-s)) for s in SCORES.tolist()) / 3
    assert loss(SCORES, True).item() == pytest.approx(expected)


def test_label_smoothing_moves_the_real_target() -> None:
    loss = LSGANLoss(LabelOptions(real_label=0.9))
    assert loss(torch.full((3,), 0.9), True).item() == pytest.approx(0)


def test_hinge_differs_between_players() -> None:
    loss = hinge(None)  # type: ignore[arg-type]
    assert loss(SCORES, True, True).item() == pytest.approx((0.5 + 2 + 0) / 3)
    assert loss(SCORES, False, True).item() == pytest.approx((1.5 + 0 + 3) / 3)
    assert loss(SCORES, True, False).item() == pytest.approx(-0.5)


def test_l1_is_mean_absolute_error() -> None:
    assert l1(None)(torch.ones(2, 2), torch.zeros(2, 2)).item() == 1.0  # type: ignore[arg-type]
