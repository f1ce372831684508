"""Reading user images safely: one policy for every odd file a dataset can hold.

converted: grayscale, palette, CMYK, 16-bit and alpha images become RGB (alpha composited on
           white), EXIF-rotated photos are turned upright, images smaller than the crop are
           upscaled by the resize;
skipped:   empty files, files that are not images, truncated images and images over the pixel
           limit (decompression bombs), each counted and named;
stopped:   a folder with no usable image (the dataset says which folder).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

log = logging.getLogger("cgfw.data")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 64_000_000  # 8000 x 8000; a decompression bomb declares far more
SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class BadImage(Exception):
    """An image that cannot be used; the message says why."""


@dataclass
class Finding:
    path: Path
    status: str  # ok | converted | skipped
    detail: str = ""


def _check_header(path: Path) -> Image.Image:
    try:
        if path.stat().st_size == 0:
            raise BadImage("empty file")
        image = Image.open(path)
    except UnidentifiedImageError:
        raise BadImage("not an image that Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise BadImage(f"over Pillow's pixel limit ({exc})") from None
    except OSError as exc:  # unreadable: permissions, a vanished file, an I/O error
        raise BadImage(f"cannot be read ({exc.strerror or exc})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise BadImage(f"{width}x{height} is over the {MAX_PIXELS // 1_000_000} MP limit")
    return image


def open_rgb(path: Path) -> Image.Image:
    """Decode `path` as an upright RGB image, or raise BadImage saying why it cannot be used."""
    with _check_header(path) as image:
        try:
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            return to_rgb(upright)
        except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
            raise BadImage(f"cannot be decoded ({exc})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT:  # keep the top 8 bits; a plain convert would clip to white
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def usable(paths: list[Path], where: str) -> list[Path]:
    """`paths` without files whose header shows they cannot be used; logs what was skipped.

    Only headers are read here (fast); truncated data shows up when an image is decoded.
    """
    keep, skipped = [], []
    for path in paths:
        try:
            _check_header(path).close()
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


def inspect(path: Path, crop_size: int) -> Finding:
    """Full decode of one file and what the loader will do with it."""
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


def to_tensor(image: Image.Image) -> Tensor:
    """RGB image -> (3, H, W) float in [-1, 1], the generators' range."""
    return pil_to_tensor(image).float().div(127.5).sub(1.0)


def images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
