"""`cgfw translate` on a tiny trained run: sizes, image modes, folders, skips and refusals."""

from __future__ import annotations

from pathlib import Path

import torch
from click.testing import CliRunner, Result
from PIL import Image

from cgfw.cli.translate import translate
from cgfw.images import to_tensor
from cgfw.session.load import load_generator
from cgfw.tools.translate import translate_batch


def invoke(*args: object) -> Result:
    return CliRunner().invoke(translate, [str(a) for a in args], catch_exceptions=False)


def pattern(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A gradient, so translations of different generators visibly differ."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.putpixel((width // 2, height // 2), (255, 0, 0))
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(Image.linear_gradient("L").resize(size))
        return image
    return image.convert(mode)


def test_single_image_resized_to_the_recipes_crop_size(trained_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "horse.jpg"
    pattern((40, 60)).save(source)
    result = invoke(trained_run, source, tmp_path / "zebra")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "zebra.png") as image:  # no suffix given: written as PNG
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 48))
    assert "translated 1 image(s) a2b (shorter side 32 px)" in result.output


def test_folder_keeps_subfolders_names_and_formats(trained_run: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    (images / "sub" / "deeper").mkdir(parents=True)
    pattern((37, 53)).save(images / "odd.png")
    pattern((40, 40), "L").save(images / "sub" / "gray.jpg")
    pattern((48, 32), "RGBA").save(images / "sub" / "deeper" / "alpha.png")
    pattern((37, 53)).save(images / "sub" / "deeper" / "odd2.png")
    result = invoke(trained_run, images, tmp_path / "out", "--full-resolution")
    assert result.exit_code == 0, result.output
    found = {
        p.relative_to(tmp_path / "out").as_posix(): p
        for p in (tmp_path / "out").rglob("*")
        if p.is_file()
    }
    assert sorted(found) == [
        "odd.png",
        "sub/deeper/alpha.png",
        "sub/deeper/odd2.png",
        "sub/gray.jpg",
    ]
    sizes = {"odd.png": (37, 53), "sub/gray.jpg": (40, 40), "sub/deeper/alpha.png": (48, 32)}
    for name, size in sizes.items():
        with Image.open(found[name]) as image:  # odd sizes come back exactly, in RGB
            assert (image.size, image.mode) == (size, "RGB"), name
    with Image.open(found["sub/gray.jpg"]) as image:
        assert image.format == "JPEG"  # the name's suffix decides the format
    assert "translated 4 image(s)" in result.output


def test_output_is_the_generator_on_the_padded_image(trained_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "odd.png"
    pattern((37, 53)).save(source)
    assert invoke(trained_run, source, tmp_path / "out.png", "--full-resolution").exit_code == 0
    net = load_generator(trained_run, "a2b").net
    expected = translate_batch(net, to_tensor(Image.open(source))[None])[0]
    written = to_tensor(Image.open(tmp_path / "out.png"))
    assert written.shape == expected.shape == (3, 53, 37)
    assert (written - expected).abs().max() <= 1 / 127.5 + 1e-6  # uint8 rounding only


def test_batches_give_the_same_images_as_one_at_a_time(trained_run: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    images.mkdir()
    for i in range(5):
        pattern((36 + 4 * (i % 2), 44)).rotate(30 * i).save(images / f"{i}.png")
    assert invoke(trained_run, images, tmp_path / "one", "--batch-size", "1").exit_code == 0
    assert invoke(trained_run, images, tmp_path / "many", "--batch-size", "3").exit_code == 0
    for i in range(5):
        one = to_tensor(Image.open(tmp_path / "one" / f"{i}.png"))
        many = to_tensor(Image.open(tmp_path / "many" / f"{i}.png"))
        assert (one - many).abs().max() <= 1 / 127.5 + 1e-6, i


def test_side_by_side_is_twice_as_wide(trained_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    pattern((37, 53)).save(source)
    result = invoke(
        trained_run, source, tmp_path / "pair.png", "--full-resolution", "--side-by-side"
    )
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "pair.png") as pair, Image.open(source) as original:
        assert pair.size == (74, 53)
        assert pair.crop((0, 0, 37, 53)).tobytes() == original.convert("RGB").tobytes()


def test_directions_use_different_generators(trained_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    pattern((32, 32)).save(source)
    assert invoke(trained_run, source, tmp_path / "a2b.png").exit_code == 0
    assert invoke(trained_run, source, tmp_path / "b2a.png", "--direction", "b2a").exit_code == 0
    a2b = Image.open(tmp_path / "a2b.png").tobytes()
    assert a2b != Image.open(tmp_path / "b2a.png").tobytes()
    checkpoint = trained_run / "checkpoints" / "latest.pt"  # a checkpoint file works as well
    assert invoke(checkpoint, source, tmp_path / "ckpt.png").exit_code == 0
    assert Image.open(tmp_path / "ckpt.png").tobytes() == a2b


def test_unreadable_files_are_skipped_with_a_count(trained_run: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    (images / "sub").mkdir(parents=True)
    pattern((32, 32)).save(images / "good.png")
    (images / "sub" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (images / "empty.jpg").write_bytes(b"")
    pattern((6, 40)).save(images / "sliver.png")  # under 8 px at full resolution
    result = invoke(trained_run, images, tmp_path / "out", "--full-resolution")
    assert result.exit_code == 0, result.output
    assert "skipped 3 file(s)" in result.output
    assert "corrupt.png" in result.output and "empty.jpg" in result.output
    assert "translated 1 image(s)" in result.output
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == ["good.png"]
    single = invoke(trained_run, images / "sub" / "corrupt.png", tmp_path / "x.png")
    assert single.exit_code == 2 and "corrupt.png: cannot be translated" in single.output


def test_inputs_are_never_overwritten(trained_run: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    images.mkdir()
    source = images / "a.png"
    pattern((32, 32)).save(source)
    before = source.read_bytes()
    for output in (source, images, images / "translated"):
        result = invoke(trained_run, source if output == source else images, output)
        assert result.exit_code == 2, output
        assert "error:" in result.output
    same = invoke(trained_run, source, images)  # a folder OUTPUT for one image: same name, refused
    assert same.exit_code == 2 and "overwrite" in same.output
    assert source.read_bytes() == before
    assert sorted(p.name for p in images.iterdir()) == ["a.png"]


def test_user_mistakes_are_one_line(trained_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    pattern((32, 32)).save(source)
    cases = [
        ((trained_run, source, tmp_path / "o.png", "--size", "64", "--full-resolution"), "exclude"),
        ((trained_run, source, tmp_path / "o.txt"), "not an image format"),
        ((trained_run, source, source / "o.png"), "cannot write"),  # its folder is a file
        ((tmp_path, source, tmp_path / "o.png"), "no recipe.toml"),
        ((trained_run, source, tmp_path / "o.png", "--device", "tpu"), "--device"),
    ]
    if not torch.cuda.is_available():
        cases.append(((trained_run, source, tmp_path / "o.png", "--device", "cuda"), "no CUDA"))
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
