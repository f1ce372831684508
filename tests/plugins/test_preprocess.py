"""data.preprocess: the authors' preprocessing modes, pixel for pixel against their get_transform
(written out below), in training and held-out; batches that cannot be equal; data.color_jitter."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision.transforms as transforms
from PIL import Image

from cgfw.images import to_tensor
from cgfw.tools.translate import Sizing, default_sizing
from cgfw.training.data import item_generator
from cgfw.training.evaluation import batches, one_size
from cgfw_paper.datasets import EmojiOptions, FolderOptions
from cgfw_paper.image_sets import apply, augment, choices, emoji, folder, plan_of
from cgfw_paper.preprocess import MODES, multiple_of_4
from tests.conftest import run_dirs

LOAD, CROP = 48, 32
# Landscape, portrait, square, odd sides, and smaller than the crop on both sides.
SHAPES = [(96, 64), (60, 90), (50, 50), (77, 55), (20, 12)]
BICUBIC = Image.Resampling.BICUBIC


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Noise with a gradient: every resize, crop and flip shows in the pixels."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (height, width, 3), generator=g, dtype=torch.uint8)
    ramp = torch.linspace(0, 255, width).to(torch.uint8)[None, :, None].expand(height, width, 3)
    return Image.fromarray(((noise.int() + ramp.int()) // 2).to(torch.uint8).numpy(), "RGB")


# --- the authors' get_transform, written out -------------------------------------------------
# junyanz/pytorch-CycleGAN-and-pix2pix, data/base_dataset.py at commit 03fb2b8 (line numbers
# of that file), with `params` given (their aligned path): crop position and flip fixed.


def authors_scale_width(img: Image.Image, target_size: int, crop_size: int) -> Image.Image:
    # __scale_width, lines 135-142
    ow, oh = img.size
    if ow == target_size and oh >= crop_size:
        return img
    w = target_size
    h = int(max(target_size * oh / ow, crop_size))
    return img.resize((w, h), BICUBIC)


def authors_crop(img: Image.Image, pos: tuple[int, int], size: int) -> Image.Image:
    # __crop, lines 145-151
    ow, oh = img.size
    x1, y1 = pos
    if ow > size or oh > size:
        return img.crop((x1, y1, x1 + size, y1 + size))
    return img


def authors_make_power_2(img: Image.Image, base: int) -> Image.Image:
    # __make_power_2, lines 123-132 (their resize method: BICUBIC, lines 115-120)
    ow, oh = img.size
    h = int(round(oh / base) * base)
    w = int(round(ow / base) * base)
    if h == oh and w == ow:
        return img
    return img.resize((w, h), BICUBIC)


def authors_transform(
    img: Image.Image,
    preprocess: str,
    load_size: int,
    crop_size: int,
    crop_pos: tuple[int, int],
    flip: bool,
) -> Image.Image:
    """get_transform, lines 81-112, up to ToTensor (both sides convert with cgfw's to_tensor)."""
    original = img
    if "resize" in preprocess:  # lines 85-87: transforms.Resize([load, load], BICUBIC)
        img = transforms.Resize([load_size, load_size], transforms.InterpolationMode.BICUBIC)(img)
    elif "scale_width" in preprocess:  # lines 88-89
        img = authors_scale_width(img, load_size, crop_size)
        if preprocess == "scale_width":
            # Ours alone: an uncropped image goes to the networks as it is, so both sides are
            # rounded to a multiple of 4 (as "none" does), in one resize of the original.
            # Theirs keeps the height, on which their ResNet returns another size.
            size = multiple_of_4(*img.size)
            if size != img.size:
                img = original.resize(size, BICUBIC)
    if "crop" in preprocess:  # lines 91-95, params given: __crop
        img = authors_crop(img, crop_pos, crop_size)
    if preprocess == "none":  # lines 97-98
        img = authors_make_power_2(img, base=4)
    if flip:  # lines 100-104: __flip, lines 154-157
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def corners(preprocess: str, width: int, height: int, load_size: int) -> list[tuple[int, int]]:
    """Crop positions to try: the first, the last and one between, in the range their
    get_params (lines 63-78) draws from: x in [0, max(0, new_w - crop_size)]."""
    new_w, new_h = width, height
    if preprocess == "resize_and_crop":
        new_w = new_h = load_size
    elif preprocess == "scale_width_and_crop":
        new_w, new_h = load_size, load_size * height // width
    last = max(0, new_w - CROP), max(0, new_h - CROP)
    return sorted({(0, 0), last, (last[0] // 3, last[1] // 2)})


def crops(preprocess: str, width: int, height: int) -> bool:
    """Whether the mode crops this image: "crop" cannot crop an image smaller than the crop
    (their CycleGAN path's RandomCrop refuses it; ours skips it, tested below)."""
    return preprocess != "crop" or min(width, height) >= CROP


CASES = [(m, s) for m in MODES for s in SHAPES if crops(m, *s)]


@pytest.mark.parametrize(
    ("preprocess", "shape"), CASES, ids=[f"{m}-{w}x{h}" for m, (w, h) in CASES]
)
def test_training_images_are_the_authors_pixel_for_pixel(
    preprocess: str, shape: tuple[int, int]
) -> None:
    image = photo(*shape)
    opts = FolderOptions(root=".", preprocess=preprocess, load_size=LOAD, crop_size=CROP)  # type: ignore[arg-type]
    p = plan_of(image, opts, train=True)
    for corner in corners(preprocess, *shape, LOAD) if p.crop else [(0, 0)]:
        for flip in (False, True):
            ours = apply(image, p, corner if p.crop else None, flip)
            theirs = authors_transform(image, preprocess, LOAD, CROP, corner, flip)
            assert torch.equal(ours, to_tensor(theirs)), (corner, flip)


@pytest.mark.parametrize(
    ("preprocess", "shape"), CASES, ids=[f"{m}-{w}x{h}" for m, (w, h) in CASES]
)
def test_held_out_images_are_the_authors_test_images_with_the_crop_centred(
    preprocess: str, shape: tuple[int, int]
) -> None:
    """Their test.py: load_size defaults to crop_size (test_options.py), no flips; theirs crops
    at random, ours at the centre."""
    image = photo(*shape, seed=1)
    opts = FolderOptions(root=".", preprocess=preprocess, load_size=LOAD, crop_size=CROP)  # type: ignore[arg-type]
    ours = augment(image, opts, None)
    last = corners(preprocess, *shape, CROP)[-1]  # the farthest corner their test could draw
    centre = last[0] // 2, last[1] // 2
    assert torch.equal(
        ours, to_tensor(authors_transform(image, preprocess, CROP, CROP, centre, False))
    )


def test_training_draws_the_corner_then_the_flip_from_the_items_generator() -> None:
    image = photo(77, 55)
    for preprocess in ("resize_and_crop", "crop", "scale_width_and_crop", "scale_width"):
        opts = FolderOptions(root=".", preprocess=preprocess, load_size=LOAD, crop_size=CROP)  # type: ignore[arg-type]
        p = plan_of(image, opts, train=True)
        xs, ys, flips = set(), set(), set()
        for seed in range(12):
            corner, flip = choices(p, opts, item_generator(seed))
            assert torch.equal(
                augment(image, opts, item_generator(seed)), apply(image, p, corner, flip)
            )
            flips.add(flip)
            if corner is not None:
                span_x, span_y = p.spans()
                assert 0 <= corner[0] < span_x and 0 <= corner[1] < span_y
                xs.add(corner[0])
                ys.add(corner[1])
        # The draws vary with the seed: both coordinates (spans of 46 and 24 for "crop").
        assert flips == {False, True}, preprocess
        assert p.crop is None or (len(xs) > 1 and len(ys) > 1), preprocess


def legacy_augment(
    image: Image.Image, opts: FolderOptions, g: torch.Generator | None
) -> torch.Tensor:
    """The dataset's transform before data.preprocess existed (resize_and_crop only)."""
    if g is None:
        return to_tensor(image.resize((opts.crop_size, opts.crop_size), BICUBIC))
    image = image.resize((opts.load_size, opts.load_size), BICUBIC)
    span = opts.load_size - opts.crop_size + 1
    x, y = (int(v) for v in torch.randint(span, (2,), generator=g))
    image = image.crop((x, y, x + opts.crop_size, y + opts.crop_size))
    if opts.flip and torch.rand((), generator=g).item() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(image)


def test_the_default_mode_gives_the_images_it_gave_before_the_modes() -> None:
    opts = FolderOptions(root=".", load_size=LOAD, crop_size=CROP, color_jitter=0.0)
    for shape in SHAPES:
        image = photo(*shape)
        assert torch.equal(augment(image, opts, None), legacy_augment(image, opts, None))
        for seed in range(6):
            ours = augment(image, opts, item_generator(seed))
            assert torch.equal(ours, legacy_augment(image, opts, item_generator(seed)))


@pytest.mark.parametrize("preprocess", MODES)
def test_planes_take_the_same_geometry_as_8_bit_images(preprocess: str) -> None:
    opts = FolderOptions(root=".", preprocess=preprocess, load_size=LOAD, crop_size=CROP)  # type: ignore[arg-type]
    for shape in [s for s in SHAPES if crops(preprocess, *s)]:
        image = photo(*shape)
        planes = to_tensor(image)
        for g in (None, 3):
            pil = augment(image, opts, None if g is None else item_generator(g))
            tensor = augment(planes, opts, None if g is None else item_generator(g))
            assert pil.shape == tensor.shape, shape
            if not plan_of(image, opts, train=g is not None).resized:  # crops and flips alone
                assert torch.equal(pil, tensor)


def test_a_crop_mode_skips_an_image_smaller_than_the_crop_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for sub, sizes in {"trainA": [(40, 40), (20, 50)], "trainB": [(36, 48)]}.items():
        (tmp_path / sub).mkdir()
        for i, size in enumerate(sizes):
            photo(*size, seed=i).save(tmp_path / sub / f"{i}.png")
    ds = folder(FolderOptions(root=str(tmp_path), preprocess="crop", crop_size=CROP), "train")
    item = ds[(1, 5)]  # A image 1 is 20 px wide: the next one is taken
    assert item["a"].shape == (3, CROP, CROP)
    assert "1.png" in caplog.text and "20x50 is smaller than data.crop_size 32" in caplog.text
    assert 'data.preprocess "crop" does not resize' in caplog.text


# --- batches ----------------------------------------------------------------------------------


def folder_of_shapes(root: Path, shapes: list[tuple[int, int]]) -> Path:
    for sub in ("trainA", "trainB", "testA", "testB"):
        (root / sub).mkdir(parents=True)
        for i, shape in enumerate(shapes):
            photo(*shape, seed=i).save(root / sub / f"{i}.png")
    return root


@pytest.mark.parametrize("preprocess", ["scale_width", "none"])
def test_a_mode_of_unequal_sizes_refuses_batches_naming_both_keys(
    tmp_path: Path, cli: Any, preprocess: str
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'extends = "paper_default"\n[data]\npreprocess = "{preprocess}"\n'
        "[train]\nbatch_size = 4\n",
        encoding="utf-8",
    )
    result = cli("recipe", "show", recipe)
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert f'data.preprocess = "{preprocess}" keeps each image' in message
    assert "train.batch_size = 4: set train.batch_size = 1" in message
    assert cli("recipe", "show", recipe, "--set", "train.batch_size=1").exit_code == 0
    # Equal crops batch, and the emoji (one tile size) batch in every mode.
    assert (
        cli("recipe", "show", recipe, "--set", 'data.preprocess="scale_width_and_crop"').exit_code
        == 0
    )
    emoji = ["--set", f'data={{name="emoji", preprocess="{preprocess}"}}']
    assert cli("recipe", "show", recipe, *emoji).exit_code == 0


def test_held_out_images_of_their_own_sizes_are_scored_and_sampled(tmp_path: Path) -> None:
    """scale_width at test keeps each aspect ratio: evaluation batches end where the size
    changes, and the sample grid takes one centred size."""
    root = folder_of_shapes(tmp_path / "d", [(64, 48), (64, 48), (48, 64), (64, 48)])
    opts = FolderOptions(
        root=str(root),
        crop_size=CROP,
        load_size=LOAD,
        test_preprocess="scale_width",
        test_load_size=40,
    )
    test = folder(opts, "test")
    shapes = [tuple(test[i]["a"].shape) for i in range(4)]
    assert shapes == [(3, 32, 40), (3, 32, 40), (3, 52, 40), (3, 32, 40)]  # 40 wide, x4 sides
    got = [tuple(a.shape) for a, _ in batches(test, "test", 8)]
    assert got == [(2, 3, 32, 40), (1, 3, 52, 40), (1, 3, 32, 40)]
    a, b = one_size([test[i] for i in range(4)])
    assert a.shape == b.shape == (4, 3, 32, 40)
    assert torch.equal(a[2], test[2]["a"][:, 10:42])  # the centre of the tall one


def test_a_run_trains_evaluates_and_samples_images_of_their_own_sizes(
    tmp_path: Path, tiny_recipe: Path, cli: Any
) -> None:
    root = folder_of_shapes(tmp_path / "d", [(48, 36), (36, 52), (44, 44)])
    data = (
        f'data={{name="folder", root="{root}", preprocess="scale_width", load_size=40, '
        'crop_size=32, test_preprocess="none"}'
    )
    sets = ["--set", data, "--set", "train.batch_size=1", "--set", "eval.every=2"]
    # The image pool keeps its fakes in one tensor: refused before the first step.
    refused = cli("run", tiny_recipe, *sets)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    message = " ".join(refused.output.split())
    assert "buffer 'image_pool' keeps its fakes in one tensor" in message
    assert "set buffer.capacity = 0" in message
    assert not (tmp_path / "runs").exists() or not run_dirs(tmp_path / "runs")
    result = cli("run", tiny_recipe, *sets, "--set", "buffer.capacity=0")
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path / "runs")
    # Two held-out pairs, 48x36 and 36x52 ("none" keeps them): the grid shows their 36 px
    # centres, six to a row (make_grid pads by 2 px).
    with Image.open(sorted((run / "samples").iterdir())[-1]) as grid:
        assert grid.size == (6 * 38 + 2, 2 * 38 + 2)


# --- translate's default scale ----------------------------------------------------------------


def test_translate_scales_as_the_held_out_images_by_default() -> None:
    def sizing(**data: Any) -> Sizing:
        opts = FolderOptions(root=".", **data)
        return default_sizing(opts, opts.crop_size)

    assert sizing() == Sizing(shorter=256)  # as before the modes: the shorter side at the crop
    authors = sizing(
        preprocess="scale_width_and_crop", load_size=1024, crop_size=360,
        test_preprocess="scale_width", test_load_size=1024,
    )  # fmt: skip
    assert authors == Sizing(width=1024) and authors.of(2048, 1000) == (1024, 500)
    assert sizing(preprocess="scale_width_and_crop", load_size=400, crop_size=256) == Sizing(
        width=256
    )
    assert sizing(preprocess="crop") == sizing(test_preprocess="none") == Sizing()
    assert Sizing().of(77, 55) is None and str(Sizing(width=9)) == "width 9 px"


def test_cgfw_translate_uses_the_runs_test_scale(
    trained_run: Path, tmp_path: Path, cli: Any
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    recipe = run / "recipe.toml"
    text = recipe.read_text(encoding="utf-8")
    recipe.write_text(
        text.replace(
            "[data]\n", '[data]\ntest_preprocess = "scale_width"\ntest_load_size = 40\n', 1
        ),
        encoding="utf-8",
    )
    photo(80, 50).save(tmp_path / "in.png")
    result = cli("translate", run, tmp_path / "in.png", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert "(width 40 px)" in result.output
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (40, 25)


# --- data.color_jitter ------------------------------------------------------------------------


def test_color_jitter_off_leaves_the_images_and_on_changes_them_reproducibly(
    tmp_path: Path,
) -> None:
    root = folder_of_shapes(tmp_path / "d", [(40, 40), (48, 36)])
    base = dict(root=str(root), load_size=36, crop_size=32)
    off = folder(FolderOptions(**base), "train")
    on = folder(FolderOptions(**base, color_jitter=0.5), "train")
    again = folder(FolderOptions(**base, color_jitter=0.5), "train")
    for key in [(0, 1), (1, 2), (0, 77)]:
        torch.manual_seed(key[1])  # the global generator must not matter
        jittered = on[key]
        torch.manual_seed(1000 + key[1])
        assert torch.equal(jittered["a"], again[key]["a"]) and torch.equal(
            jittered["b"], again[key]["b"]
        )
        plain = off[key]
        assert not torch.equal(jittered["a"], plain["a"]) and not torch.equal(
            jittered["b"], plain["b"]
        )
        assert jittered["a"].min() >= -1 and jittered["a"].max() <= 1
    assert not torch.equal(on[(0, 1)]["a"], on[(0, 2)]["a"])  # each item its own factors
    # Off, an item is what it was before color_jitter existed: its draws (the partner, then
    # each side's crop and flip) are not shifted.
    opts = FolderOptions(**base)
    for index, seed in [(0, 1), (1, 2), (1, 9)]:
        g = item_generator(seed)
        partner = int(torch.randint(len(off.b), (), generator=g))
        a = legacy_augment(off.load(off.a[index]), opts, g)
        b = legacy_augment(off.load(off.b[partner]), opts, g)
        assert torch.equal(off[(index, seed)]["a"], a) and torch.equal(off[(index, seed)]["b"], b)
    # Held-out images are never jittered.
    assert torch.equal(
        folder(FolderOptions(**base, color_jitter=0.5), "test")[0]["a"],
        folder(FolderOptions(**base), "test")[0]["a"],
    )


def test_color_jitter_takes_grayscale_and_refuses_other_channel_counts() -> None:
    gray = emoji(EmojiOptions(channels=1, color_jitter=0.3), "train")
    assert gray[(0, 1)]["a"].shape == (1, 64, 64)
    with pytest.raises(
        ValueError, match=r"color_jitter 0\.3 needs 1- or 3-channel images, not channels = 4"
    ):
        FolderOptions(root=".", channels=4, color_jitter=0.3)
