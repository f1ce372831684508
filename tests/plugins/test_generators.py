import pytest
import torch

from cgfw.training.model import count_parameters
from cgfw_paper.generators import ResnetOptions
from cgfw_paper.nets import resnet, resnet_upsample


@pytest.mark.parametrize(("n_blocks", "expected"), [(9, 11_378_179), (6, 7_837_699)])
def test_resnet_parameter_counts_match_the_paper(n_blocks: int, expected: int) -> None:
    assert count_parameters(resnet(ResnetOptions(n_blocks=n_blocks))) == expected


def test_upsample_variant_has_the_same_count_but_no_transposed_conv() -> None:
    net = resnet_upsample(ResnetOptions())
    assert count_parameters(net) == 11_378_179
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, torch.nn.Upsample) for m in net.modules()) == 2


def test_instance_norm_has_no_affine_parameters_and_output_is_tanh() -> None:
    net = resnet(ResnetOptions(n_blocks=2, ngf=8))
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert norms and all(not n.affine for n in norms)
    y = net(torch.randn(2, 3, 32, 32) * 5)
    assert y.shape == (2, 3, 32, 32)
    assert y.abs().max() <= 1


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("factory", [resnet, resnet_upsample])
def test_every_norm_keeps_the_shape(norm: str, factory) -> None:  # type: ignore[no-untyped-def]
    net = factory(ResnetOptions(n_blocks=1, ngf=4, norm=norm, dropout=True))
    assert net(torch.randn(2, 3, 24, 40)).shape == (2, 3, 24, 40)
    assert any(isinstance(m, torch.nn.Dropout) for m in net.modules())


def test_batch_norm_drops_the_redundant_conv_bias() -> None:
    net = resnet(ResnetOptions(n_blocks=1, ngf=4, norm="batch"))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is None for c in convs[:-1])  # the output conv keeps its bias
    assert convs[-1].bias is not None
