"""Every odd image a dataset can hold: converted, skipped or stopped, and never modified."""

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from cgfw.images import inspect, open_rgb, usable
from cgfw_paper.datasets import FolderOptions
from cgfw_paper.image_sets import folder


def png_claiming(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header declares width x height (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(image: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """One file per case, all in one folder."""
    d = tmp_path / "zoo"
    d.mkdir()
    rgb = Image.new("RGB", (40, 30), (200, 30, 30))
    rgb.save(d / "ok.png")
    full = jpeg_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    (d / "truncated.jpg").write_bytes(full[: len(full) // 2])
    png = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(png, "PNG")
    (d / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is not a picture\n")
    Image.new("L", (40, 30), 77).save(d / "gray.png")
    Image.new("RGBA", (40, 30), (0, 0, 255, 0)).save(d / "transparent.png")
    Image.new("RGB", (40, 30), (10, 200, 10)).convert("P").save(d / "palette.png")
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(d / "cmyk.jpg")
    Image.new("I;16", (40, 30), 40000).save(d / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    (d / "rotated.jpg").write_bytes(jpeg_bytes(Image.new("RGB", (40, 30), (90, 90, 90)), exif=exif))
    Image.new("RGB", (10, 8), (1, 2, 3)).save(d / "small.png")
    png_claiming(d / "bomb.png", 100_000, 100_000)
    png_claiming(d / "huge.png", 9_000, 9_000)
    return d


EXPECTED = {
    "ok.png": ("ok", ""),
    "truncated.jpg": ("skipped", "cannot be decoded"),
    "truncated.png": ("skipped", "cannot be decoded"),
    "empty.jpg": ("skipped", "empty file"),
    "text.jpg": ("skipped", "not an image"),
    "gray.png": ("converted", "L -> RGB"),
    "transparent.png": ("converted", "RGBA -> RGB on white"),
    "palette.png": ("converted", "P -> RGB"),
    "cmyk.jpg": ("converted", "CMYK -> RGB"),
    "sixteen.png": ("converted", "I;16 -> RGB"),
    "rotated.jpg": ("converted", "rotated upright (EXIF orientation 6)"),
    "small.png": ("converted", "10x8 upscaled"),
    "bomb.png": ("skipped", "over Pillow's pixel limit"),
    "huge.png": ("skipped", "9000x9000 is over the 64 MP limit"),
}


def test_each_case_is_converted_or_skipped_with_a_reason(zoo: Path) -> None:
    for name, (status, detail) in EXPECTED.items():
        finding = inspect(zoo / name, crop_size=16)
        assert finding.status == status, (name, finding)
        assert detail in finding.detail, (name, finding)


def test_conversions_give_sensible_rgb(zoo: Path) -> None:
    assert open_rgb(zoo / "transparent.png").getpixel((0, 0)) == (255, 255, 255)  # on white
    assert open_rgb(zoo / "gray.png").getpixel((0, 0)) == (77, 77, 77)
    assert open_rgb(zoo / "sixteen.png").getpixel((0, 0)) == (
        156,
        156,
        156,
    )  # 40000 / 256, not clipped
    assert open_rgb(zoo / "rotated.jpg").size == (30, 40)  # upright
    cmyk = open_rgb(zoo / "cmyk.jpg").getpixel((0, 0))
    assert cmyk[0] > 200 and cmyk[1] < 60 and cmyk[2] < 60  # C=0 M=Y=255 is red


def test_header_scan_skips_what_it_can_see_and_says_so(
    zoo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept = usable(sorted(zoo.iterdir()), "zoo")
    assert {p.name for p in kept} == set(EXPECTED) - {
        "empty.jpg",
        "text.jpg",
        "bomb.png",
        "huge.png",
    }
    assert "skipped 4 unusable file(s)" in caplog.text and "empty.jpg (empty file)" in caplog.text


def test_training_substitutes_a_truncated_image_and_damages_nothing(
    zoo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "set"
    for side in ("trainA", "trainB"):
        (root / side).mkdir(parents=True)
        for name in EXPECTED:
            (root / side / name).write_bytes((zoo / name).read_bytes())
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    ds = folder(FolderOptions(root=str(root), load_size=36, crop_size=32), "train")
    items = [ds[(i, i)] for i in range(len(ds))]
    assert all(item["a"].shape == (3, 32, 32) for item in items)
    assert "truncated.jpg: cannot be decoded" in caplog.text.replace(
        "skipping " + str(root / "trainA") + "/", ""
    )
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    assert before == after


def test_data_check_reports_every_problem(zoo: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "set"
    (root / "trainA").mkdir(parents=True)
    (root / "trainB").mkdir()
    for name in EXPECTED:
        (root / "trainA" / name).write_bytes((zoo / name).read_bytes())
    (root / "trainB" / "ok.png").write_bytes((zoo / "ok.png").read_bytes())
    result = cli("data", "check", root, "--crop-size", "16")
    assert result.exit_code == 1  # usable, but files would be skipped
    for name, (status, _) in EXPECTED.items():
        if status != "ok":
            assert f"{status}: {root / 'trainA' / name}" in result.output
    (root / "trainB" / "ok.png").unlink()
    (root / "trainB" / "empty.jpg").write_bytes(b"")
    result = cli("data", "check", root)
    assert result.exit_code == 2 and "trainB/ has no usable image" in result.output


def test_data_check_on_a_clean_set_and_a_missing_domain(
    folder_dataset: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    result = cli("data", "check", folder_dataset, "--crop-size", "16")
    assert result.exit_code == 0 and "every image is usable" in result.output
    (tmp_path / "half" / "trainA").mkdir(parents=True)
    result = cli("data", "check", tmp_path / "half")
    assert result.exit_code == 2 and "trainB/ is missing" in result.output


def test_a_folder_of_only_bad_files_stops_with_the_folder_named(tmp_path: Path) -> None:
    from cgfw.errors import CgfwError

    for side in ("trainA", "trainB"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "x.jpg").write_text("nope")
    with pytest.raises(CgfwError, match=r"trainA' holds no usable images.*cgfw data check"):
        folder(FolderOptions(root=str(tmp_path)), "train")
