"""A corpus of hostile image files, for any test that feeds user images to cgfw.

`bad_images(folder)` writes them (in about a quarter of a second, a few hundred KiB on disk: the
big ones are sparse or compressed, never held in memory) and returns their paths. For data of 3
channels (the default) those in `REFUSED` must each be skipped (training, `cgfw data check`) or
refused (`cgfw translate` on the file) with one message naming it, `BAD_SAMPLES` of them only
once decoded; those in `USABLE` are odd but converted. `OVERSIZED` names those whose header
claims more than cgfw.images' limits (64 MP, or 256 million samples read as planes): their
samples must never be decoded, which `decoding_guard` checks from inside Pillow, tifffile and
numpy.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, TiffImagePlugin

from cgfw.images import MAX_PIXELS, MAX_SAMPLES

OVERSIZED = frozenset(
    {
        "gray16_81mp.tif",
        "claims_100000x100000.tif",
        "rgb16_9000x9000.tif",
        "pages16_81mp.tif",
        "pages16_300x1mp.tif",  # 1 MP pages, but 300 of them: over the limit of samples
        "huge_81mp.npy",
        "claims_100000x100000.png",
    }
)
REFUSED = (OVERSIZED - {"pages16_300x1mp.tif"}) | {
    "object_dtype.npy",
    "complex.npy",
    "four_axes.npy",
    "short_data.npy",
    "truncated.png",
    "truncated.jpg",
    "truncated.tif",
    "no_rows_per_strip.tif",
    "strip_past_the_end.tif",
    "empty.png",
    "text.png",
}
# Refused, but only once decoded: their headers are sound (training skips them when drawn).
BAD_SAMPLES = frozenset(
    {
        "truncated.png",
        "truncated.jpg",
        "truncated.tif",
        "no_rows_per_strip.tif",
        "strip_past_the_end.tif",
    }
)
# For 3-channel data; pages16_300x1mp.tif too, as Pillow reads its first page only.
USABLE = frozenset({"one_pixel.png", "rgba.png", "gray_alpha.png", "gray16.png"}) | (
    OVERSIZED - REFUSED
)


def bad_images(folder: Path) -> list[Path]:
    """Write every hostile file into `folder` (created if need be, and may hold other files);
    their paths, sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    # Over the 64 MP limit, claimed by headers whose data would take gigabytes decoded.
    tiff_claiming(folder / "gray16_81mp.tif", 9000, 9000)
    tiff_claiming(folder / "claims_100000x100000.tif", 100_000, 100_000)
    tiff_claiming(folder / "rgb16_9000x9000.tif", 9000, 9000, samples=3)
    tiff_claiming(folder / "pages16_81mp.tif", 9000, 9000, pages=3)
    tiff_claiming(folder / "pages16_300x1mp.tif", 1000, 1000, pages=300)  # 300 M samples
    np.lib.format.open_memmap(  # a sparse file: only the header is ever written
        folder / "huge_81mp.npy", mode="w+", dtype=np.uint16, shape=(9000, 9000)
    ).flush()
    png_claiming(folder / "claims_100000x100000.png", 100_000, 100_000)
    # Arrays that are not images; the object one must never be unpickled.
    np.save(folder / "object_dtype.npy", np.array([[{"x": 1}]], dtype=object), allow_pickle=True)
    np.save(folder / "complex.npy", np.zeros((16, 16), np.complex64))
    np.save(folder / "four_axes.npy", np.zeros((2, 16, 16, 3), np.uint8))
    npy_claiming(folder / "short_data.npy", (64, 64))
    # Damaged or not images at all.
    png, jpeg = io.BytesIO(), io.BytesIO()
    noise = Image.effect_noise((64, 64), 50).convert("RGB")
    noise.save(png, "PNG")
    noise.save(jpeg, "JPEG")
    (folder / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    tiff = io.BytesIO()
    tifffile.imwrite(tiff, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    (folder / "truncated.tif").write_bytes(tiff.getvalue()[:4000])  # its header, half its strip
    # Headers that parse, samples each decoder fails on in its own way (tifffile raises
    # ZeroDivisionError and zlib.error, Pillow OSError).
    tiff_claiming(folder / "no_rows_per_strip.tif", 64, 64, tags={278: 0})
    tiff_claiming(folder / "strip_past_the_end.tif", 64, 64, tags={273: 1 << 28})
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not a picture\n", encoding="utf-8")
    # Odd but usable: converted to RGB for 3-channel data.
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one_pixel.png")
    Image.new("RGBA", (40, 40), (0, 0, 255, 128)).save(folder / "rgba.png")
    Image.new("LA", (40, 40), (90, 255)).save(folder / "gray_alpha.png")
    Image.new("I;16", (40, 40), 40000).save(folder / "gray16.png")
    paths = sorted(folder / name for name in REFUSED | USABLE)
    assert all(p.is_file() for p in paths), "the corpus writes every file it lists"
    return paths


@contextmanager
def decoding_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Watch every decoder cgfw reaches (Pillow's load, tifffile's asarray, numpy.load) and list
    each call asked for more than the limits (or to unpickle), before it allocates anything; the
    call then fails with MemoryError, as it would for real. A list, not an assertion: the code
    under test rightly turns a decoder's exception into a skipped file, so the test asserts
    the list is empty afterwards."""
    over: list[str] = []

    def check(what: str, pixels: int, samples: int) -> None:
        if pixels > MAX_PIXELS or samples > MAX_SAMPLES:
            over.append(f"{what}: {pixels:,} pixels, {samples:,} samples")
            raise MemoryError(f"decoding_guard: {what} decoded past the limit")

    def pillow(original: Callable[..., Any]) -> Callable[..., Any]:
        def load(self: ImageFile.ImageFile) -> Any:
            width, height = self.size
            samples = width * height * len(self.getbands())
            check(f"Pillow {self.filename}", width * height, samples)
            return original(self)

        return load

    def tifffile_asarray(
        original: Callable[..., Any], target: Callable[..., Any]
    ) -> Callable[..., Any]:
        def asarray(self: Any, *args: Any, **kwargs: Any) -> Any:
            decoded = target(self, **kwargs)  # the page or series about to be decoded
            sides = dict(zip(decoded.axes, decoded.shape, strict=True))
            pixels, samples = sides.get("Y", 1) * sides.get("X", 1), int(np.prod(decoded.shape))
            check(f"tifffile {decoded.shape} {decoded.axes}", pixels, samples)
            return original(self, *args, **kwargs)

        return asarray

    real_load = np.load

    def numpy_load(file: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("allow_pickle"):
            over.append(f"numpy.load({file}, allow_pickle=True)")
        if kwargs.get("mmap_mode") is None and isinstance(file, (str, Path)):
            with open(file, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read(f)
            if dtype.hasobject:
                over.append(f"numpy.load({file}) of Python objects")
            pixels = int(np.prod(shape[:2])) if len(shape) >= 2 else 0
            check(f"numpy.load({file})", pixels, int(np.prod(shape)))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", pillow(ImageFile.ImageFile.load))
    tiff_load = TiffImagePlugin.TiffImageFile.load
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load", pillow(tiff_load))
    for cls, target in (
        (tifffile.TiffPageSeries, lambda self, **_: self),
        (tifffile.TiffPage, lambda self, **_: self),
        (tifffile.TiffFile, _series_of),
    ):
        monkeypatch.setattr(cls, "asarray", tifffile_asarray(cls.asarray, target))
    monkeypatch.setattr(np, "load", numpy_load)
    yield over


def _series_of(tiff: tifffile.TiffFile, series: Any = None, **_: Any) -> Any:
    """The series TiffFile.asarray decodes: given as itself (as TiffPageSeries.asarray does) or
    by index, the first by default."""
    return series if isinstance(series, tifffile.TiffPageSeries) else tiff.series[series or 0]


def tiff_claiming(
    path: Path,
    width: int,
    height: int,
    *,
    samples: int = 1,
    pages: int = 1,
    compress: bool = True,
    tags: Mapping[int, int] | None = None,
) -> Path:
    """A valid little-endian TIFF of 16-bit zeros: `pages` pages of width x height x `samples`,
    a few kilobytes however large it claims to be, since every strip of every page points at
    one deflate-compressed block (a decompression bomb's trick). With `compress=False` (small
    sizes only) the strips are written out, once, and shared by the pages. `tags` replaces the
    value of those tags (every value of one that has several), to break the file on purpose."""
    row = width * samples * 2
    rows_per_strip = max(1, min(height, (8 << 20) // row))  # at most 8 MiB a strip, decoded
    strips = -(-height // rows_per_strip)
    block = bytes(row * rows_per_strip)
    data = zlib.compress(block, 9) if compress else block * strips
    step = 0 if compress else len(block)
    data_at = 8
    out = bytearray(b"II*\x00" + struct.pack("<I", data_at + len(data)) + data)
    size = {3: 2, 4: 4}  # bytes of a SHORT and a LONG
    for page in range(pages):
        entries: list[tuple[int, int, list[int]]] = [  # (tag, type, values), in tag order
            (256, 4, [width]),
            (257, 4, [height]),
            (258, 3, [16] * samples),
            (259, 3, [8 if compress else 1]),  # deflate, or none
            (262, 3, [2 if samples == 3 else 1]),  # RGB, or min-is-black
            (273, 4, [data_at + i * step for i in range(strips)]),
            (277, 3, [samples]),
            (278, 4, [rows_per_strip]),
            (279, 4, [len(data) if compress else len(block)] * strips),
            (284, 3, [1]),  # samples interleaved
            (339, 3, [1] * samples),  # unsigned integers
        ]
        broken = tags or {}
        entries = [(t, k, [broken[t]] * len(v) if t in broken else v) for t, k, v in entries]
        extra_at = len(out) + 2 + 12 * len(entries) + 4  # values over 4 bytes follow the IFD
        ifd, extra = bytearray(struct.pack("<H", len(entries))), bytearray()
        for tag, kind, values in entries:
            packed = struct.pack("<" + {3: "H", 4: "I"}[kind] * len(values), *values)
            ifd += struct.pack("<HHI", tag, kind, len(values))
            if size[kind] * len(values) <= 4:
                ifd += packed.ljust(4, b"\0")
            else:
                ifd += struct.pack("<I", extra_at + len(extra))
                extra += packed
        next_at = 0 if page + 1 == pages else extra_at + len(extra)
        out += ifd + struct.pack("<I", next_at) + extra
    path.write_bytes(bytes(out))
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares width x height RGB and whose data is empty."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    return path


def npy_claiming(path: Path, shape: tuple[int, ...]) -> Path:
    """A .npy header for uint16 `shape` followed by far fewer bytes than it declares."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<u2", "fortran_order": False, "shape": shape}
        )
        f.write(bytes(100))
    return path
