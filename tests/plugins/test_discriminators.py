import torch

from cgfw.training.model import count_parameters
from cgfw_paper.discriminators import PatchOptions, PixelOptions
from cgfw_paper.nets import patchgan, pixel


def test_patchgan_parameter_count_matches_the_paper() -> None:
    assert count_parameters(patchgan(PatchOptions())) == 2_764_737


def test_patchgan_scores_30x30_patches_at_256px() -> None:
    net = patchgan(PatchOptions(ndf=8))
    assert net(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_first_patchgan_layer_has_no_norm() -> None:
    layers = list(patchgan(PatchOptions(ndf=8)))
    assert isinstance(layers[0], torch.nn.Conv2d)
    assert isinstance(layers[1], torch.nn.LeakyReLU)
    assert layers[1].negative_slope == 0.2


def test_pixelgan_scores_every_pixel() -> None:
    assert pixel(PixelOptions(ndf=8))(torch.zeros(2, 3, 32, 32)).shape == (2, 1, 32, 32)
