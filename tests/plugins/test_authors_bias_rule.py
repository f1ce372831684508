"""The authors' conv-bias rule (`use_bias = norm_layer == nn.InstanceNorm2d`, models/networks.py)
for every norm: cgfw_paper's networks have exactly their parameters, so counts match theirs and
their files load key for key; a cgfw checkpoint from before the rule is one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cgfw.cli.translate import load_generator
from cgfw.errors import CgfwError
from cgfw.training.model import count_parameters
from cgfw_paper.discriminators import PatchOptions, PixelOptions
from cgfw_paper.generators import ResnetOptions
from cgfw_paper.nets import patchgan, pixel, resnet, resnet_upsample
from tests.conftest import run_dirs
from tests.plugins.test_import_weights import _Layout, authors_patchgan, authors_resnet

NORMS = ["instance", "batch", "none"]
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def authors_pixel(ndf: int, norm: str) -> _Layout:
    """PixelDiscriminator: conv (bias), LeakyReLU, conv, norm, LeakyReLU, conv; the last two
    convs take use_bias (the last one too, unlike the PatchGAN's)."""
    lay, b = _Layout(norm), norm == "instance"
    lay.conv("net.0", 3, ndf, 1, True)
    lay.conv("net.2", ndf, 2 * ndf, 1, b)
    lay.normal("net.3", 2 * ndf)
    lay.conv("net.5", 2 * ndf, 1, 1, b)
    return lay


def authors_count(layout: _Layout) -> int:
    """Their parameters: every tensor of the layout but batch norm's running statistics."""
    return sum(
        int(torch.Size(shape).numel())
        for key, shape in layout.shapes.items()
        if not key.endswith(BUFFERS)
    )


def shapes(net: nn.Module, prefix: str) -> dict[str, tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in net.state_dict().items()}


def test_the_reference_gives_the_numbers_quoted_in_the_issue() -> None:
    # Issue 25: "124,467 (authors) vs 124,931 (cgfw)" for ngf 8, 6 blocks with norm none,
    # 464 = the 10 ngf + 8 ngf * 6 conv biases cgfw had and the authors do not.
    assert authors_count(authors_resnet(8, 6, "none")) == 124_467
    assert authors_count(authors_resnet(64, 9)) == 11_378_179  # the paper's generator
    assert authors_count(authors_patchgan(64, 3)) == 2_764_737  # and discriminator


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("ngf", "n_blocks"), [(8, 6), (64, 9)])
def test_resnet_has_the_authors_parameters(norm: str, ngf: int, n_blocks: int) -> None:
    layout = authors_resnet(ngf, n_blocks, norm)
    net = resnet(ResnetOptions(ngf=ngf, n_blocks=n_blocks, norm=norm))
    assert count_parameters(net) == authors_count(layout)
    assert shapes(net, "model.") == layout.shapes
    # The upsampling variant swaps each transposed conv for a conv of the same size and bias.
    upsample = resnet_upsample(ResnetOptions(ngf=ngf, n_blocks=n_blocks, norm=norm))
    assert count_parameters(upsample) == authors_count(layout)


def test_the_quoted_small_generator_with_norm_none() -> None:
    assert count_parameters(resnet(ResnetOptions(ngf=8, n_blocks=6, norm="none"))) == 124_467


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("ndf", "n_layers"), [(64, 3), (8, 2)])
def test_patchgan_has_the_authors_parameters(norm: str, ndf: int, n_layers: int) -> None:
    layout = authors_patchgan(ndf, n_layers, norm)
    net = patchgan(PatchOptions(ndf=ndf, n_layers=n_layers, norm=norm))  # type: ignore[arg-type]
    assert count_parameters(net) == authors_count(layout)
    assert shapes(net, "model.") == layout.shapes


@pytest.mark.parametrize("norm", NORMS)
def test_pixel_discriminator_has_the_authors_parameters(norm: str) -> None:
    layout = authors_pixel(64, norm)
    net = pixel(PixelOptions(norm=norm))  # type: ignore[arg-type]
    assert count_parameters(net) == authors_count(layout)
    assert shapes(net, "net.") == layout.shapes


# --- checkpoints saved before the rule: norm none convs had biases ----------------------------


def add_old_biases(weights: dict[str, torch.Tensor], net: nn.Module) -> int:
    """What cgfw saved before the rule: a (trained) bias on every conv that lacks one now."""
    added = 0
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d) and module.bias is None:
            weights[f"{name}.bias"] = torch.randn(module.out_channels)
            added += 1
    return added


@pytest.fixture
def old_no_norm_run(tiny_recipe: Path, cli: Any) -> Path:
    result = cli(
        "run", tiny_recipe, "--set", "train.max_iters=2",
        "--set", "generator.norm=none", "--set", "discriminator.norm=none",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    path = run_dir / "checkpoints" / "latest.pt"
    state = torch.load(path, weights_only=True)
    nets = {
        "g_ab": resnet(ResnetOptions(n_blocks=2, ngf=8, norm="none")),
        "g_ba": resnet(ResnetOptions(n_blocks=2, ngf=8, norm="none")),
        "d_a": patchgan(PatchOptions(n_layers=2, ndf=8, norm="none")),
        "d_b": patchgan(PatchOptions(n_layers=2, ndf=8, norm="none")),
    }
    for name, net in nets.items():
        assert add_old_biases(state["model"]["networks"][name], net) > 0
    # Saved as such runs were: format 1, before checkpoints carried a checksum.
    del state["checksum"], state["log"]
    torch.save(state | {"format": 1}, path)
    return run_dir


def test_translate_names_an_old_checkpoint_with_conv_biases(old_no_norm_run: Path) -> None:
    path = old_no_norm_run / "checkpoints" / "latest.pt"
    with pytest.raises(CgfwError, match="the network layout changed") as err:
        load_generator(old_no_norm_run, "a2b")
    assert str(path) in str(err.value) and "g_ab" in str(err.value)
    assert 'norm "none" networks built before' in str(err.value)


def test_resume_names_an_old_checkpoint_with_conv_biases(old_no_norm_run: Path, cli: Any) -> None:
    result = cli("run", "--resume", old_no_norm_run, "--set", "train.max_iters=4")
    assert result.exit_code == 2
    assert "the network layout changed" in result.output
    assert str(old_no_norm_run / "checkpoints" / "latest.pt") in result.output
    assert "Traceback" not in result.output


def test_a_checkpoint_of_today_still_loads(tiny_recipe: Path, cli: Any) -> None:
    result = cli("run", tiny_recipe, "--set", "train.max_iters=2", "--set", "generator.norm=none")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    assert load_generator(run_dir, "a2b").net is not None
