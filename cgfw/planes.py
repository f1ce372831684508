"""Images that are not 8-bit RGB, read and written at full precision as planes: a (C, H, W)
float32 tensor in [-1, 1], the generators' range, and the sample type they were stored in.

Read (never through 8 bits):
- 16-bit PNG and other Pillow images of 16-bit, 32-bit or float samples (modes I;16*, I, F): one
  channel, uint16 / 65535 (Pillow's 32-bit mode I holds 16-bit PNGs too, read on that scale),
  float as already in [0, 1];
- TIFF, through tifffile: 8- or 16-bit or float samples, multi-page stacks and pages of several
  samples; every axis but height and width becomes a channel (pages, then samples);
- .npy arrays, HxW (one channel) or HxWxC (channels last, as numpy images are): uint8 and uint16
  scaled by their range, float taken as already in [0, 1] (clamped there);
- 8-bit Pillow images when data.channels is not 3: L (1), LA (2), RGB (3), RGBA (4, alpha kept
  as a channel; with 3 channels alpha is composited on white, as always).
Written: in the sample type read (uint8, uint16, float32), in the format the file name's suffix
gives: .npy (HxW or HxWxC), TIFF (pages for counts other than 1, 3), PNG (1 or 3 channels; 16-bit
PNG only for one channel, Pillow's limit: use .tif for 16-bit colour).

Pillow reads 16-bit colour PNGs (48-bit RGB) as 8-bit RGB, so those are read at 8 bits: convert
them to TIFF or .npy to keep their precision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch
from numpy.typing import NDArray
from PIL import Image
from torch import Tensor

ARRAY_SUFFIXES = {".npy"}
TIFF_SUFFIXES = {".tif", ".tiff"}
# Pillow modes read at more than 8 bits; everything else Pillow opens is 8 bits a sample.
DEEP_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
# 8-bit Pillow modes read as they are when data.channels is not 3; others become RGB.
KEPT_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
SAMPLE_TYPES = (np.uint8, np.uint16, np.float32)


class UnreadableArray(Exception):
    """An array file or TIFF that cannot be used; the message says why."""


@dataclass
class Planes:
    """An image at full precision: (C, H, W) float32 in [-1, 1] and its stored sample type."""

    data: Tensor
    dtype: np.dtype[np.generic]

    @property
    def channels(self) -> int:
        return int(self.data.shape[0])


def pil_channels(mode: str) -> int:
    """Channels a Pillow image of `mode` gives when read as planes."""
    if mode in DEEP_MODES or mode == "1":
        return 1
    return KEPT_MODES.get(mode, 3)


def readable_samples(dtype: np.dtype[np.generic]) -> bool:
    """Sample types `to_unit_tensor` scales: uint8, uint16 (and int16 / int32, Pillow's types
    for 16-bit PNG samples) and floats."""
    return dtype in (np.uint8, np.uint16, np.int32, np.int16) or np.issubdtype(dtype, np.floating)


def to_unit_tensor(array: NDArray[np.generic]) -> Planes:
    """(C, H, W) samples -> planes: integers scaled by their type's range, float clamped to
    [0, 1]. 32-bit integers (Pillow's mode I) are 16-bit PNG samples: scaled as uint16, as are
    int16 ones (negative values clipped to 0)."""
    dtype = array.dtype
    if not readable_samples(dtype):
        raise UnreadableArray(f"samples of type {dtype} (use uint8, uint16 or float)")
    if dtype == np.uint8:
        unit = array.astype(np.float32) / 255.0
    elif np.issubdtype(dtype, np.floating):
        unit = np.clip(array.astype(np.float32), 0.0, 1.0)
        dtype = np.dtype(np.float32)
    else:
        unit = np.clip(array.astype(np.float32), 0, 65535) / 65535.0
        dtype = np.dtype(np.uint16)
    data = torch.from_numpy(np.ascontiguousarray(unit)).mul(2.0).sub(1.0)
    return Planes(data, np.dtype(dtype))


def from_pil(image: Image.Image) -> Planes:
    """A decoded Pillow image as planes, at its own bit depth."""
    if image.mode not in DEEP_MODES and image.mode not in KEPT_MODES and image.mode != "1":
        image = image.convert("RGB")
    if image.mode == "1":
        image = image.convert("L")
    array = np.asarray(image)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return to_unit_tensor(array)


@dataclass(frozen=True)
class Layout:
    """What a .npy or TIFF file's header declares, read without a single sample."""

    height: int
    width: int
    channels: int
    dtype: np.dtype[np.generic]


def array_layout(path: Path) -> Layout:
    """The layout of a .npy or TIFF file from its header, checked as `read_array` needs it: a
    sample type it scales, HxW or HxWxC for .npy, and for .npy as many bytes as declared. The
    samples are not read, so a header claiming gigabytes costs nothing here."""
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return _npy_layout(path)
    try:
        shape, axes, dtype = _tiff_layout(path)
    except OSError:
        raise
    except Exception as exc:  # a hostile file breaks tifffile's parser in many ways
        raise UnreadableArray(f"not a TIFF that tifffile can read ({_why(exc)})") from None
    if "Y" not in axes or "X" not in axes:
        raise UnreadableArray(f"a TIFF of axes {axes} (shape {shape}): no height and width")
    if not readable_samples(np.dtype(dtype)):
        raise UnreadableArray(f"samples of type {dtype} (use uint8, uint16 or float)")
    sides = {a: n for n, a in zip(shape, axes, strict=True)}
    channels = int(np.prod([n for n, a in zip(shape, axes, strict=True) if a not in "YX"]))
    return Layout(sides["Y"], sides["X"], channels, np.dtype(dtype))


def _tiff_layout(path: Path) -> tuple[tuple[int, ...], str, np.dtype[np.generic]]:
    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        return tuple(series.shape), series.axes, series.dtype


def _npy_layout(path: Path) -> Layout:
    """A .npy header through numpy.lib.format, which never unpickles anything."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
        except Exception as exc:  # a bad magic string or header: numpy's message says which
            raise UnreadableArray(f"not a .npy array ({_why(exc)})") from None
        data_at = f.tell()
    if dtype.hasobject:
        raise UnreadableArray(
            f"holds Python objects (dtype {dtype}), which cgfw never unpickles; save a numeric "
            "array (uint8, uint16 or float)"
        )
    if not readable_samples(dtype):
        raise UnreadableArray(f"samples of type {dtype} (use uint8, uint16 or float)")
    if len(shape) not in (2, 3):
        raise UnreadableArray(f"shape {shape}: a .npy image is HxW or HxWxC")
    declared = data_at + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < declared:
        raise UnreadableArray(
            f"truncated: its header declares {shape} of {dtype} ({declared:,} bytes), the file "
            f"has {size:,}"
        )
    return Layout(shape[0], shape[1], 1 if len(shape) == 2 else shape[2], dtype)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def tiff_is_deep(path: Path) -> bool:
    """Whether Pillow would lose part of this TIFF: more than 8 bits a sample, several pages, or
    samples other than gray, RGB and RGBA. A TIFF tifffile cannot parse is left to Pillow."""
    try:
        shape, axes, dtype = _tiff_layout(path)
    except Exception:  # whatever breaks tifffile's parse: Pillow decides, and names the problem
        return False
    if dtype != np.uint8:
        return True
    return not (axes == "YX" or (axes == "YXS" and shape[-1] in (3, 4)))


def array_channels(path: Path) -> int:
    """Channels of a .npy or TIFF file from its header, without reading the samples."""
    return array_layout(path).channels


def read_array(path: Path) -> Planes:
    """A .npy or TIFF file as planes (see the module's notes for the layouts). Callers check
    `array_layout` first (its size, above all); UnreadableArray when the samples cannot be
    decoded."""
    array_layout(path)  # the header checked before every sample is read
    try:
        if path.suffix.lower() in ARRAY_SUFFIXES:
            array = np.load(path, allow_pickle=False)
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            return to_unit_tensor(array)
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0]
            array, axes = series.asarray(), series.axes
    except (UnreadableArray, OSError):
        raise
    except Exception as exc:  # truncated or corrupt samples: each decoder raises its own type
        raise UnreadableArray(_why(exc)) from None
    # Height and width last, every other axis (pages, samples) flattened into channels.
    array = np.moveaxis(array, [axes.index("Y"), axes.index("X")], [-2, -1])
    return to_unit_tensor(array.reshape(-1, *array.shape[-2:]))


def resize_planes(planes: Tensor, height: int, width: int) -> Tensor:
    """(C, H, W) or (N, C, H, W) in [-1, 1] resized bicubic (antialiased when shrinking, as
    Pillow's resize is), clamped back to [-1, 1] like Pillow's 8-bit result."""
    if tuple(planes.shape[-2:]) == (height, width):
        return planes
    batch = planes if planes.dim() == 4 else planes[None]
    out = torch.nn.functional.interpolate(
        batch, size=(height, width), mode="bicubic", align_corners=False, antialias=True
    ).clamp(-1.0, 1.0)
    return out if planes.dim() == 4 else out[0]


def stored(planes: Tensor, dtype: np.dtype[np.generic]) -> NDArray[np.generic]:
    """(C, H, W) in [-1, 1] -> samples of `dtype` (rounded for integers), (C, H, W)."""
    unit = planes.detach().float().cpu().clamp(-1.0, 1.0).add(1.0).mul(0.5).numpy()
    if dtype == np.uint8:
        return np.rint(unit * 255.0).astype(np.uint8)
    if dtype == np.uint16:
        return np.rint(unit * 65535.0).astype(np.uint16)
    return unit.astype(np.float32)


def write_planes(planes: Tensor, path: Path, dtype: np.dtype[np.generic]) -> None:
    """Write planes in `dtype` as the suffix of `path` says (see the module's notes)."""
    suffix = path.suffix.lower()
    channels = int(planes.shape[0])
    if suffix in ARRAY_SUFFIXES:
        array = stored(planes, dtype)
        np.save(path, array[0] if channels == 1 else array.transpose(1, 2, 0))
        return
    if suffix in TIFF_SUFFIXES:
        array = stored(planes, dtype)
        if channels == 1:
            tifffile.imwrite(path, array[0])
        elif channels == 3:
            tifffile.imwrite(path, array.transpose(1, 2, 0), photometric="rgb")
        else:  # one page per channel, read back in the same order
            tifffile.imwrite(path, array, photometric="minisblack")
        return
    if channels not in (1, 3):
        raise UnreadableArray(
            f"{channels} channels do not fit a {suffix} image; write .tif or .npy instead"
        )
    if dtype != np.uint8 and channels == 1 and suffix == ".png":
        Image.fromarray(stored(planes, np.dtype(np.uint16))[0]).save(path)  # mode I;16
        return
    if dtype != np.uint8 and suffix == ".png":
        raise UnreadableArray(
            "Pillow writes 16-bit PNGs of one channel only; write .tif or .npy for 16-bit colour"
        )
    array = stored(planes, np.dtype(np.uint8))  # formats of 8 bits a sample (JPEG, WebP, BMP)
    image = Image.fromarray(array[0] if channels == 1 else array.transpose(1, 2, 0))
    if suffix in {".jpg", ".jpeg", ".webp"}:
        image.save(path, quality=95)  # as translate writes 8-bit RGB ones
    else:
        image.save(path)
