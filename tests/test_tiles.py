"""[cgfw.tools.tiles] Tiled translation equals the whole image's, to fp32 rounding, for the
paper's two ResNet generators and a plugin's U-Net (examples/cgfw-unet); a generator whose
statistics cannot be split falls back to one piece with a warning; `cgfw translate --tile` and
`Run.translate(tile=...)` use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

import cgfw
from cgfw.tools import tiles
from cgfw.tools.translate import translate_batch
from cgfw_paper.generators import ResnetOptions
from cgfw_paper.nets import resnet

ROOT = Path(__file__).resolve().parents[1]


def unet(monkeypatch: pytest.MonkeyPatch) -> nn.Module:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "cgfw-unet"))
    from cgfw_unet.networks import UnetGenerator

    return UnetGenerator(5, ngf=4)


@pytest.mark.parametrize(
    ("network", "size", "tile"),
    [("resnet", (48, 64), 32), ("resnet_upsample", (48, 64), 32), ("unet", (96, 128), 64)],
)
def test_a_tiled_translation_equals_the_whole_image(
    network: str, size: tuple[int, int], tile: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    if network == "unet":
        net = unet(monkeypatch)
    else:
        options = ResnetOptions(n_blocks=2, ngf=8, in_channels=3, out_channels=3)
        net = resnet(options, transposed=network == "resnet")
    net.eval()
    image = torch.rand(2, 3, *size) * 2 - 1  # a batch: statistics are per image
    with torch.no_grad():
        whole = net(image)
    tiled = tiles.translate_tiled(net, image, tile)
    assert (tiled - whole).abs().max() <= 1e-4
    # and the tiles really were tiles: each one alone is far from its part of the whole
    with torch.no_grad():
        corner = net(image[..., :tile, :tile])
    assert (corner - whole[..., :tile, :tile]).abs().max() > 1e-2


def test_a_generator_that_cannot_be_tiled_is_translated_whole_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Conv2d(4, 3, 1))
    net.eval()
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        whole = net(image)
    result = translate_batch(net, image, tile=16)
    assert torch.equal(result, whole)
    err = capsys.readouterr().err
    assert "cannot be translated in tiles" in err and "'1' (GroupNorm)" in err


def test_translate_and_the_python_api_take_a_tile(
    trained_run: Path, tmp_path: Path, cli: Any
) -> None:
    source = tmp_path / "wide.png"
    Image.effect_noise((64, 40), 60).convert("RGB").save(source)
    outputs = {}
    for tile in (None, 32):
        target = tmp_path / f"out_{tile}.png"
        extra = ["--tile", str(tile)] if tile else []
        result = cli("translate", trained_run, source, target, "--full-resolution", *extra)
        assert result.exit_code == 0, result.output
        outputs[tile] = torch.tensor(list(Image.open(target).getdata())).float()
    assert (outputs[None] - outputs[32]).abs().max() <= 1  # one 8-bit level of rounding
    run = cgfw.load(trained_run, device="cpu")
    x = torch.rand(3, 40, 64) * 2 - 1
    assert (run.translate(x, tile=32) - run.translate(x)).abs().max() <= 1e-4
