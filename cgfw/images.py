"""Reading user images safely: one policy for every odd file a dataset can hold.

converted: grayscale, palette, CMYK, 16-bit and alpha images become RGB (alpha composited on
           white), EXIF-rotated photos are turned upright, images smaller than the crop are
           upscaled by the resize;
skipped:   empty files, files that are not images, truncated images and images over the pixel
           limit (decompression bombs: refused from their header, before a sample is decoded,
           .npy and TIFF read as planes too), each counted and named;
stopped:   a folder with no usable image (the dataset says which folder), and a folder whose
           images do not all have data.channels channels (the error names a file and the fix).

With data.channels = 3 (the default) every image Pillow reads at 8 bits becomes 8-bit RGB as
above, exactly as before data.channels existed. Anything else (another channel count, 16-bit and
float TIFFs, TIFF stacks, .npy arrays) is read at full precision as planes: cgfw.planes.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from cgfw.errors import CgfwError
from cgfw.planes import (
    ARRAY_SUFFIXES,
    TIFF_SUFFIXES,
    Layout,
    Planes,
    UnreadableArray,
    array_channels,
    array_layout,
    from_pil,
    pil_channels,
    read_array,
    tiff_is_deep,
)

log = logging.getLogger("cgfw.data")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", *ARRAY_SUFFIXES}
MAX_PIXELS = 64_000_000  # 8000 x 8000; a decompression bomb declares far more
# Planes may hold many channels (TIFF pages): at most what a 64 MP RGBA image holds.
MAX_SAMPLES = 4 * MAX_PIXELS
SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class BadImage(Exception):
    """An image that cannot be used; the message says why."""


@dataclass
class Finding:
    path: Path
    status: str  # ok | converted | skipped
    detail: str = ""


def _check_pixels(width: int, height: int, channels: int = 1) -> None:
    """The decompression-bomb limit, applied to what a header declares."""
    if width * height > MAX_PIXELS:
        raise BadImage(f"{width}x{height} is over the {MAX_PIXELS // 1_000_000} MP limit")
    if width * height * channels > MAX_SAMPLES:
        raise BadImage(
            f"{width}x{height} of {channels} channels is over the limit of "
            f"{MAX_SAMPLES // 1_000_000} million samples (a {MAX_PIXELS // 1_000_000} MP RGBA "
            "image)"
        )


def _check_not_empty(path: Path) -> None:
    try:
        empty = path.stat().st_size == 0
    except OSError as exc:  # unreadable: permissions, a vanished file, an I/O error
        raise BadImage(f"cannot be read ({exc.strerror or exc})") from None
    if empty:
        raise BadImage("empty file")


def _check_header(path: Path) -> Image.Image:
    _check_not_empty(path)
    try:
        with warnings.catch_warnings():  # Pillow warns of bombs under its limit: ours follows
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except UnidentifiedImageError:
        raise BadImage("not an image that Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise BadImage(f"over Pillow's pixel limit ({exc})") from None
    except OSError as exc:  # unreadable: permissions, a vanished file, an I/O error
        raise BadImage(f"cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # a hostile header breaks Pillow's parsers in many ways
        raise BadImage(f"not an image that Pillow can read ({_why(exc)})") from None
    try:
        _check_pixels(*image.size)
    except BadImage:
        image.close()
        raise
    return image


def _check_array(path: Path) -> Layout:
    """The header of a file read as planes (.npy, deep TIFF), checked as Pillow's are above:
    the samples of a file over the limit are never read."""
    _check_not_empty(path)
    try:
        layout = array_layout(path)
    except UnreadableArray as exc:
        raise BadImage(str(exc)) from None
    except OSError as exc:
        raise BadImage(f"cannot be read ({exc.strerror or exc})") from None
    _check_pixels(layout.width, layout.height, layout.channels)
    return layout


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def open_rgb(path: Path) -> Image.Image:
    """Decode `path` as an upright RGB image, or raise BadImage saying why it cannot be used."""
    with _check_header(path) as image:
        try:
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            return to_rgb(upright)
        except Exception as exc:  # truncated or corrupt data: each decoder raises its own type
            raise BadImage(f"cannot be decoded ({_why(exc)})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT:  # keep the top 8 bits; a plain convert would clip to white
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def is_array(path: Path, channels: int = 3) -> bool:
    """Read by cgfw.planes rather than Pillow: .npy files, and TIFFs Pillow would cut short.
    For 3-channel data only a 3-channel TIFF: any other (16-bit gray, gray + alpha, several
    pages) becomes RGB through Pillow, as it did before data.channels existed."""
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return True
    if suffix not in TIFF_SUFFIXES or not tiff_is_deep(path):
        return False
    if channels != 3:
        return True
    try:
        return array_channels(path) == 3
    except (UnreadableArray, OSError):
        return False  # Pillow decides, and names the problem


def _check_file(path: Path) -> None:
    """Raise BadImage when the file's header shows it cannot be used."""
    if is_array(path):
        _check_array(path)
    else:
        _check_header(path).close()


def channel_count(path: Path, channels: int) -> int:
    """Channels the loader gives this file when the data has `channels` channels: 3 for every
    8-bit image Pillow reads when that is 3 (they are converted to RGB, as always)."""
    if is_array(path, channels):
        return _check_array(path).channels
    if channels == 3:
        return 3
    with _check_header(path) as image:
        return pil_channels(image.mode)


def check_channels(paths: list[Path], where: str, channels: int) -> None:
    """Stop on a folder whose images do not all have `channels` channels, naming a file of each
    count found and the two fixes."""
    found: dict[int, list[Path]] = {}
    for path in paths:
        try:
            found.setdefault(channel_count(path, channels), []).append(path)
        except BadImage:
            continue  # corrupt files are skipped when loaded, and named then
    odd = {count: files for count, files in found.items() if count != channels}
    if not odd:
        return
    count, files = min(odd.items(), key=lambda item: len(item[1]))
    kinds = ", ".join(f"{len(f)} of {c} channel(s)" for c, f in sorted(found.items()))
    raise CgfwError(
        f"{where}: data.channels = {channels}, but {files[0].name} has {count} channel(s) "
        f"({kinds} in this folder). Set data.channels = {count} if that is the data, or convert "
        f"the {len(files)} file(s) of {count} channel(s) to {channels}"
    )


def decode(path: Path, channels: int) -> Image.Image | Planes:
    """The image at `path` as the loader uses it: an 8-bit Pillow image (RGB for 3 channels,
    grayscale L for 1) whose transforms are those used before data.channels existed, or planes
    at full precision (16-bit, float, N channels). BadImage when it cannot be used."""
    if is_array(path, channels):
        found = _check_array(path).channels  # size and channels before a sample is read
        if found != channels:
            raise _other_channels(found, channels)
        try:
            return read_array(path)
        except UnreadableArray as exc:
            raise BadImage(f"cannot be decoded ({exc})") from None
        except OSError as exc:
            raise BadImage(f"cannot be read ({exc.strerror or exc})") from None
    if channels == 3:
        return open_rgb(path)
    with _check_header(path) as image:
        try:
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            if channels == 1 and upright.mode in ("L", "1"):
                return upright.convert("L")
            planes = from_pil(upright)
        except Exception as exc:  # truncated or corrupt data, as in open_rgb
            raise BadImage(f"cannot be decoded ({_why(exc)})") from None
    if planes.channels != channels:  # a folder is checked up front (check_channels)
        raise _other_channels(planes.channels, channels)
    return planes


def _other_channels(found: int, channels: int) -> BadImage:
    return BadImage(
        f"has {found} channel(s), not data.channels = {channels}; convert it, or use "
        f"data.channels = {found}"
    )


def usable(paths: list[Path], where: str) -> list[Path]:
    """`paths` without files whose header shows they cannot be used; logs what was skipped.

    Only headers are read here (fast); truncated data shows up when an image is decoded.
    """
    keep, skipped = [], []
    for path in paths:
        try:
            _check_file(path)
            keep.append(path)
        except BadImage as exc:
            skipped.append(f"{path.name} ({exc})")
    if skipped:
        shown = "; ".join(skipped[:5]) + ("; ..." if len(skipped) > 5 else "")
        log.warning(
            "%s: skipped %d unusable file(s): %s. `cgfw data check` lists every problem",
            where,
            len(skipped),
            shown,
        )
    return keep


def inspect(path: Path, crop_size: int, channels: int = 3) -> Finding:
    """Full decode of one file and what the loader will do with it for data of `channels`."""
    if is_array(path, channels) or channels != 3:
        return _inspect_planes(path, crop_size, channels)
    try:
        image = open_rgb(path)
        with _check_header(path) as header:
            mode, orientation = header.mode, header.getexif().get(0x0112, 1)
    except BadImage as exc:
        return Finding(path, "skipped", str(exc))
    notes = []
    if mode != "RGB":
        notes.append(f"{mode} -> RGB" + (" on white" if "A" in mode or mode == "P" else ""))
    if orientation not in (1, None):
        notes.append(f"rotated upright (EXIF orientation {orientation})")
    if min(image.size) < crop_size:
        notes.append(f"{image.width}x{image.height} upscaled (smaller than crop {crop_size})")
    return Finding(path, "converted" if notes else "ok", "; ".join(notes))


def _inspect_planes(path: Path, crop_size: int, channels: int) -> Finding:
    """`inspect` for what is not read as 8-bit RGB: arrays, other channel counts."""
    try:
        decoded = decode(path, channels)
    except BadImage as exc:
        return Finding(path, "skipped", str(exc))
    notes = []
    if isinstance(decoded, Planes):
        width, height = decoded.data.shape[-1], decoded.data.shape[-2]
        notes.append(f"{decoded.channels} channel(s) of {decoded.dtype}, read at full precision")
    else:
        width, height = decoded.size
    if min(width, height) < crop_size:
        notes.append(f"{width}x{height} upscaled (smaller than crop {crop_size})")
    return Finding(path, "converted" if notes else "ok", "; ".join(notes))


def to_tensor(image: Image.Image) -> Tensor:
    """RGB image -> (3, H, W) float in [-1, 1], the generators' range."""
    return pil_to_tensor(image).float().div(127.5).sub(1.0)


def images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
