"""data.channels: grayscale 16-bit PNGs, N-channel .npy arrays and TIFF stacks, carried from the
folder through the networks to translate and export, at full precision; and nothing of the
8-bit RGB path changed (tests/test_pinned_losses.py and tests/test_parity.py pin the losses)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from click.testing import Result
from PIL import Image

from cgfw.errors import CgfwError
from cgfw.images import decode, open_rgb, to_tensor
from cgfw.planes import Planes, read_array, write_planes
from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.model import build_network, count_parameters
from cgfw.training.tensorboard import sample_grid
from cgfw_paper.datasets import EmojiOptions, FolderOptions
from cgfw_paper.distributions import as_rgb
from cgfw_paper.image_sets import emoji, folder
from cgfw_paper.pixel_metrics import l1, psnr, ssim
from tests.conftest import TINY, run_dirs

SPLITS = ("trainA", "trainB", "testA", "testB")
Cli = Callable[..., Result]


def gray16(seed: int, size: int = 40) -> np.ndarray:
    """A 16-bit gradient with noise: thousands of levels, most between two 8-bit steps."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 60000, size * size).reshape(size, size)
    return (ramp + rng.integers(0, 5000, (size, size))).astype(np.uint16)


def gray16_folder(root: Path) -> Path:
    for s, sub in enumerate(SPLITS):
        (root / sub).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(gray16(10 * s + i)).save(root / sub / f"{i}.png")
    return root


def npy4_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for sub in SPLITS:
        (root / sub).mkdir(parents=True)
        for i in range(3):
            np.save(root / sub / f"{i}.npy", rng.random((40, 40, 4), dtype=np.float32))
    return root


def folder_recipe(tmp_path: Path, root: Path, channels: int) -> Path:
    """The tiny recipe (32 px, ngf 8, 2 blocks, 4 steps) on a folder of `channels` channels."""
    text = TINY.format(out=tmp_path / "runs").replace(
        'name = "emoji"', f'name = "folder"\nroot = "{root}"\nchannels = {channels}'
    )
    path = tmp_path / f"folder{channels}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_16_bit_png_is_read_at_full_precision(tmp_path: Path) -> None:
    samples = gray16(0)
    Image.fromarray(samples).save(tmp_path / "g.png")
    planes = decode(tmp_path / "g.png", 1)
    assert isinstance(planes, Planes) and planes.dtype == np.uint16
    expected = torch.from_numpy(samples.astype(np.float32) / 65535.0)[None] * 2 - 1
    assert torch.equal(planes.data, expected)  # every 16-bit level, none rounded to 8 bits


def test_a_16_bit_grayscale_folder_trains_and_translates_to_16_bits(
    cli: Cli, tmp_path: Path
) -> None:
    root = gray16_folder(tmp_path / "gray16")
    result = cli("run", folder_recipe(tmp_path, root, 1))
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path / "runs")
    grid = Image.open(sorted((run / "samples").glob("*.png"))[-1])
    assert grid.mode == "RGB"  # one channel shown as gray

    out = tmp_path / "out.png"
    translated = cli("translate", run, root / "testA" / "0.png", out, "--full-resolution")
    assert translated.exit_code == 0, translated.output
    written = Image.open(out)
    values = np.asarray(written)
    assert written.mode == "I;16" and values.shape == (40, 40)
    # 16 bits written: many levels, and not 8-bit levels scaled up (multiples of 257).
    assert len(np.unique(values)) > 256 and np.any(values % 257 != 0)


def test_a_4_channel_npy_folder_trains_translates_and_exports(cli: Cli, tmp_path: Path) -> None:
    root = npy4_folder(tmp_path / "npy4")
    result = cli("run", folder_recipe(tmp_path, root, 4))
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path / "runs")

    translated = cli("translate", run, root / "testA", tmp_path / "out")
    assert translated.exit_code == 0, translated.output
    array = np.load(tmp_path / "out" / "0.npy")
    assert array.shape == (32, 32, 4) and array.dtype == np.float32
    assert array.min() >= 0.0 and array.max() <= 1.0

    exported = cli("export", run, "--format", "torchscript")
    assert exported.exit_code == 0, exported.output
    assert "checked on a (2, 4, 32, 64) batch" in exported.output

    # The Python API takes the run's 4 channels as a tensor and says what to do with a picture.
    import cgfw

    loaded = cgfw.load(run, device="cpu")
    real_a = torch.rand(4, 32, 32) * 2 - 1
    assert loaded.translate(real_a).shape == (4, 32, 32)
    with pytest.raises(CgfwError, match=r"give \(4, H, W\)"):
        loaded.translate(torch.rand(3, 32, 32))
    with pytest.raises(CgfwError, match="4 channel"):
        loaded.translate(Image.new("RGB", (32, 32)))


def test_a_tiff_stack_round_trips_at_full_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 65536, (5, 24, 20), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    planes = read_array(tmp_path / "stack.tif")
    assert planes.channels == 5 and planes.dtype == np.uint16
    expected = torch.from_numpy(stack.astype(np.float32) / 65535.0) * 2 - 1
    assert torch.equal(planes.data, expected)  # page k is channel k

    write_planes(planes.data, tmp_path / "again.tif", planes.dtype)
    assert np.array_equal(tifffile.imread(tmp_path / "again.tif"), stack)  # bit for bit


def test_a_folder_of_mixed_channel_counts_is_one_error_naming_the_file(
    cli: Cli, tmp_path: Path
) -> None:
    root = gray16_folder(tmp_path / "mixed")
    Image.new("RGB", (40, 40), (200, 30, 40)).save(root / "trainB" / "colour.png")
    result = cli("run", folder_recipe(tmp_path, root, 1))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "trainB" in result.output and "colour.png has 3 channel(s)" in result.output
    assert "data.channels = 3" in result.output  # the fix, beside converting the file


def test_data_check_names_the_file_of_another_channel_count(cli: Cli, tmp_path: Path) -> None:
    root = gray16_folder(tmp_path / "gray16")
    clean = cli("data", "check", root, "--channels", "1", "--crop-size", "32")
    assert clean.exit_code == 0, clean.output
    assert "1 channel(s) of uint16, read at full precision" in clean.output
    Image.new("RGB", (40, 40), (200, 30, 40)).save(root / "testB" / "colour.png")
    mixed = cli("data", "check", root, "--channels", "1", "--crop-size", "32")
    assert mixed.exit_code == 2 and "colour.png has 3 channel(s)" in mixed.output


def test_a_network_channel_count_that_disagrees_with_the_data_names_both_keys(
    tmp_path: Path, loaded: Loaded
) -> None:
    root = gray16_folder(tmp_path / "gray16")
    recipe = folder_recipe(tmp_path, root, 1)
    with pytest.raises(CgfwError, match=r"generator\.in_channels = 3 .*data\.channels = 1"):
        load(str(recipe), loaded.registry, ["generator.in_channels=3"])


def test_paper_networks_keep_their_parameter_counts_at_3_channels(loaded: Loaded) -> None:
    resolved = load("paper_default", loaded.registry)
    assert count_parameters(build_network(resolved, "generator")) == 11_378_179
    assert count_parameters(build_network(resolved, "discriminator")) == 2_764_737
    gray = load("paper_default", loaded.registry, ["data.channels=1"])
    # Only the first and last convolutions see the channels: 64 x 7 x 7 weights each fewer
    # per channel (2 of 3 channels gone, twice), and the PatchGAN's first 64 x 4 x 4 x 2.
    assert count_parameters(build_network(gray, "generator")) == 11_378_179 - 2 * 2 * 64 * 49 - 2
    assert count_parameters(build_network(gray, "discriminator")) == 2_764_737 - 2 * 64 * 16


def test_8_bit_rgb_folders_are_read_as_before(tmp_path: Path) -> None:
    """With data.channels = 3 an 8-bit image goes through Pillow exactly as it always did."""
    root = tmp_path / "rgb"
    rng = np.random.default_rng(2)
    for sub in SPLITS:
        (root / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
            root / sub / "0.png"
        )
    dataset = folder(FolderOptions(root=str(root), load_size=36, crop_size=32), "test")
    path = root / "testA" / "0.png"
    before = to_tensor(open_rgb(path).resize((32, 32), Image.Resampling.BICUBIC))
    assert torch.equal(dataset[0]["a"], before)
    assert isinstance(decode(path, 3), Image.Image)


def test_the_emoji_in_grayscale() -> None:
    dataset = emoji(EmojiOptions(channels=1, load_size=36, crop_size=32), "train")
    assert dataset[(0, 1)]["a"].shape == (1, 32, 32)


@pytest.mark.parametrize("channels", [1, 4])
def test_paired_metrics_take_any_channel_count(channels: int) -> None:
    real = torch.rand(2, channels, 32, 32) * 2 - 1
    fake = (real + 0.1 * torch.randn_like(real)).clamp(-1, 1)
    for factory in (psnr, ssim, l1):
        metric = factory(None)  # type: ignore[arg-type]
        metric.update(fake, real)
        assert np.isfinite(metric.compute())


def test_inception_metrics_see_gray_as_rgb_and_refuse_other_counts() -> None:
    gray = torch.rand(2, 1, 8, 8)
    assert torch.equal(as_rgb(gray, "kid"), gray.repeat(1, 3, 1, 1))
    with pytest.raises(CgfwError, match=r"kid scores RGB images.*4 channels"):
        as_rgb(torch.rand(2, 4, 8, 8), "kid")


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
def test_sample_grids_are_rgb_whatever_the_channel_count(channels: int) -> None:
    rows = [torch.rand(2, channels, 8, 8) * 2 - 1 for _ in range(6)]
    grid = sample_grid(rows)
    assert grid.shape[0] == 3
    if channels >= 3:  # the first three channels, as RGB
        first = sample_grid([r[:, :3] for r in rows])
        assert torch.equal(grid, first)


def test_tiffs_of_another_channel_count_become_rgb_for_3_channel_data_as_before(
    tmp_path: Path,
) -> None:
    """16-bit gray, gray + alpha and multi-page TIFFs in an RGB folder: Pillow makes them RGB,
    as before data.channels existed (not a stop for a user who never set it)."""
    from cgfw.images import check_channels

    gray16 = (np.arange(32 * 32).reshape(32, 32) * 50).astype(np.uint16)
    tifffile.imwrite(tmp_path / "gray16.tif", gray16)
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((2, 32, 32), np.uint8))
    Image.new("LA", (32, 32), (90, 255)).save(tmp_path / "gray_alpha.tif")
    files = sorted(tmp_path.iterdir())
    check_channels(files, str(tmp_path), 3)  # no error
    for path in files:
        image = decode(path, 3)
        assert isinstance(image, Image.Image) and image.mode == "RGB", path.name
        assert image.tobytes() == open_rgb(path).tobytes()
