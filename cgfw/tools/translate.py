"""`cgfw translate`: run a trained generator over one image or a folder of them.

Any image size works: each image is resized (or kept at full resolution), reflect-padded to the
multiple the generator's downsampling needs, translated, and cropped back. Images of one size
are batched. Output files keep the input's names; each is written in the format its suffix names
(PNG when the name has no image suffix). Unreadable files are skipped and counted, never fatal
for a folder, and no input file is ever written to.

Images are read as the run's data were (data.channels; cgfw.images.decode): 8-bit RGB as
always, and 16-bit, float and N-channel images (.npy, TIFF stacks) at full precision, whose
translations are written at the input's precision (16-bit in, 16-bit out; see cgfw.planes).

`load_generator` is shared with `cgfw export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.markup import escape
from torch import Tensor, nn

from cgfw.errors import CgfwError
from cgfw.images import IMAGE_SUFFIXES, images_in, to_tensor
from cgfw.planes import ARRAY_SUFFIXES, Planes, UnreadableArray, resize_planes, write_planes
from cgfw.store.layout import write_error
from cgfw.terminal import console
from cgfw.tools import tiles

DEFAULT_SIZE = 256  # the paper's resolution, for recipes whose dataset has no crop_size
# The paper's generators downsample twice (x4), so sides must be multiples of 4 for the output
# to come back at the input's size.
MULTIPLE = 4
# Below 8 px the bottleneck is 1 px wide and the residual blocks' reflection padding fails.
MIN_SIDE = 8
# Images waiting for a full batch of their size; past this many batches' worth the largest
# group goes through part-filled, so a folder of all-different sizes cannot fill memory.
PENDING_BATCHES = 4
# Output formats that take a quality setting; the default (75) visibly blurs generated texture.
QUALITY = {".jpg": 95, ".jpeg": 95, ".webp": 95}


def to_image(tensor: Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> RGB image, rounded rather than truncated."""
    array = tensor.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), "RGB")


def shorter_side_to(width: int, height: int, size: int | None) -> tuple[int, int] | None:
    """(width, height) with the shorter side at `size`, aspect ratio kept; None when `size` is
    None or already the shorter side (the image stays as it is)."""
    if size is None or min(width, height) == size:
        return None
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class Sizing:
    """How translate sizes an image, aspect ratio kept: its shorter side to `shorter` px, or
    its width to `width` px; neither: as it is (full resolution)."""

    shorter: int | None = None
    width: int | None = None

    def of(self, width: int, height: int) -> tuple[int, int] | None:
        """The new (width, height), or None to keep the image as it is."""
        if self.width is None or width == self.width:
            return shorter_side_to(width, height, self.shorter)
        return self.width, max(1, round(height * self.width / width))

    def __str__(self) -> str:
        if self.width is not None:
            return f"width {self.width} px"
        return "full resolution" if self.shorter is None else f"shorter side {self.shorter} px"


def default_sizing(data_options: object, crop_size: int | None) -> Sizing:
    """translate's size when none is given: the scale of the run's held-out images, which a
    dataset's options may say as `translate_scale` (Sizing's arguments: the authors'
    scale_width modes give the width, crop and none full resolution), else the shorter side
    at data.crop_size (256 without one)."""
    scale = getattr(data_options, "translate_scale", None)
    if isinstance(scale, dict):
        return Sizing(**scale)
    return Sizing(shorter=crop_size or DEFAULT_SIZE)


def resize_to(image: Image.Image, new: tuple[int, int] | None) -> Image.Image:
    # Bicubic, as the datasets resize for training.
    return image if new is None else image.resize(new, Image.Resampling.BICUBIC)


def resize_planes_to(planes: Planes, new: tuple[int, int] | None) -> Planes:
    """`resize_to` for full-precision planes."""
    if new is None:
        return planes
    new_w, new_h = new
    return Planes(resize_planes(planes.data, new_h, new_w), planes.dtype)


def resize_shorter(image: Image.Image, size: int | None) -> Image.Image:
    """Shorter side to `size`, aspect ratio kept; None keeps the image as it is."""
    return resize_to(image, shorter_side_to(*image.size, size))


# What translate reads an input as: an 8-bit Pillow image, or planes at full precision.
Decoded = Image.Image | Planes


def side_of(image: Decoded) -> tuple[int, int]:
    """(width, height), the key images are batched by."""
    if isinstance(image, Image.Image):
        return image.size
    height, width = image.data.shape[-2:]
    return width, height


@torch.no_grad()
def translate_batch(net: nn.Module, batch: Tensor, tile: int | None = None) -> Tensor:
    """Pad (reflect) to a multiple of MULTIPLE, translate, crop back to the input's size.
    With `tile`, an image larger than it is translated in tiles of that side that give what
    the whole image gives (cgfw.tools.tiles); a generator that cannot be tiled that way is
    translated whole, with a warning saying why."""
    height, width = batch.shape[-2:]
    if tile is not None and max(height, width) > tile:
        try:
            padded = tiles.pad_to(batch, tiles.multiple_of(net))
            return tiles.translate_tiled(net, padded, tile)[..., :height, :width]
        except tiles.NotTileable as exc:
            warn_untiled(str(exc))
    pad_h, pad_w = -height % MULTIPLE, -width % MULTIPLE
    # Reflection continues the image's texture; zero padding would show as a dark border.
    padded = F.pad(batch, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else batch
    result = net(padded)
    if result.shape != padded.shape:
        raise CgfwError(
            f"the generator returned shape {tuple(result.shape)} for a {tuple(padded.shape)} "
            f"batch; cgfw translate needs a generator that keeps the image size"
        )
    return result[..., :height, :width]


_warned: set[str] = set()


def warn_untiled(reason: str) -> None:
    """Once per reason: a generator that cannot be tiled goes through in one piece."""
    if reason not in _warned:
        _warned.add(reason)
        console.print(
            f"[yellow]warning:[/yellow] --tile: this generator cannot be translated in tiles "
            f"that equal the whole image ({escape(reason)}); translating each image whole"
        )


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def _output_file(path: Path) -> Path:
    """OUTPUT for one image: its suffix picks the format; without one it becomes a PNG."""
    if not path.suffix:
        return path.with_name(path.name + ".png")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise CgfwError(
            f"OUTPUT {path}: '{path.suffix}' is not an image format cgfw writes; use one of "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} (or no suffix for PNG)"
        )
    return path


def plan(input_path: Path, output: Path) -> list[Job]:
    """Every (input, output) pair, refusing any plan that would write over an input file."""
    source = input_path.resolve()
    target = output.resolve()
    if source == target:
        raise CgfwError(
            f"OUTPUT {output} is INPUT itself; translations never overwrite their inputs, "
            "give another file or folder"
        )
    if source.is_dir():
        if target.is_file():
            raise CgfwError(f"OUTPUT {output} is a file; a folder INPUT needs a folder OUTPUT")
        if target.is_relative_to(source):
            # The outputs would be read as inputs by the next run over INPUT.
            raise CgfwError(
                f"OUTPUT {output} is inside INPUT {input_path}; give a folder outside it"
            )
        files = images_in(input_path)
        if not files:
            raise CgfwError(
                f"{input_path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder "
                "or its subfolders"
            )
        jobs = [Job(f, output / f.relative_to(input_path)) for f in files]
    else:
        if target.is_dir():
            name = input_path.name
            if input_path.suffix.lower() not in IMAGE_SUFFIXES:
                name = input_path.stem + ".png"
            jobs = [Job(input_path, output / name)]
        else:
            jobs = [Job(input_path, _output_file(output))]
    inputs = {j.source.resolve() for j in jobs}
    for job in jobs:
        if job.target.resolve() in inputs:
            raise CgfwError(
                f"{job.target} would overwrite the input file of the same name; "
                "give an OUTPUT apart from INPUT"
            )
    return jobs


def save_planes(planes: Tensor, path: Path, dtype: np.dtype[np.generic]) -> None:
    """Planes written at `dtype`'s precision, in the format the suffix names."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_planes(planes, path, dtype)
    except UnreadableArray as exc:
        raise CgfwError(f"cannot write {path}: {exc}") from None
    except OSError as exc:
        raise write_error(path, exc) from None


def save(image: Image.Image, path: Path) -> None:
    quality = QUALITY.get(path.suffix.lower())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if quality is None:
            image.save(path)
        else:
            image.save(path, quality=quality)
    except OSError as exc:  # a full disk or a read-only folder ends the run: later writes fail too
        raise write_error(path, exc) from None


class Translator:
    """Collects decoded images by size and translates them a batch at a time."""

    def __init__(
        self,
        net: nn.Module,
        device: torch.device,
        batch_size: int,
        side_by_side: bool,
        tile: int | None = None,
    ) -> None:
        self.net, self.device, self.tile = net, device, tile
        self.batch_size, self.side_by_side = batch_size, side_by_side
        self.pending: dict[tuple[int, int], list[tuple[Path, Decoded]]] = {}
        self.done = 0

    def add(self, target: Path, image: Decoded) -> int:
        """Queue one decoded image; returns how many images were written as a result."""
        size = side_of(image)
        group = self.pending.setdefault(size, [])
        group.append((target, image))
        if len(group) >= self.batch_size:
            return self.flush(size)
        if sum(len(g) for g in self.pending.values()) > PENDING_BATCHES * self.batch_size:
            return self.flush(max(self.pending, key=lambda k: len(self.pending[k])))
        return 0

    def flush(self, size: tuple[int, int]) -> int:
        group = self.pending.pop(size)
        batch = torch.stack([as_tensor(image) for _, image in group]).to(self.device)
        try:
            results = translate_batch(self.net, batch, self.tile).cpu()
        except torch.cuda.OutOfMemoryError:
            width, height = size
            raise CgfwError(
                f"out of GPU memory translating {len(group)} image(s) of {width}x{height}; "
                "use a smaller --batch-size or --size, --tile 512, or --device cpu"
            ) from None
        for (target, image), result in zip(group, results, strict=True):
            if not isinstance(image, Image.Image) or not as_before(result, target):
                self.write_planes(image, result, target)
                continue
            translated = to_image(result)
            if self.side_by_side:
                pair = Image.new("RGB", (image.width * 2, image.height))
                pair.paste(image, (0, 0))
                pair.paste(translated, (image.width, 0))
                translated = pair
            save(translated, target)
        self.done += len(group)
        return len(group)

    def write_planes(self, image: Decoded, result: Tensor, target: Path) -> None:
        """A translation that is not 8-bit RGB: at the input's precision (8 bits for an 8-bit
        input), side by side along the width."""
        dtype = image.dtype if isinstance(image, Planes) else np.dtype(np.uint8)
        out = torch.cat([as_tensor(image), result], -1) if self.side_by_side else result
        save_planes(out, target, dtype)

    def finish(self) -> int:
        return sum(self.flush(size) for size in list(self.pending))


def as_tensor(image: Decoded) -> Tensor:
    return to_tensor(image) if isinstance(image, Image.Image) else image.data


def as_before(result: Tensor, target: Path) -> bool:
    """An 8-bit RGB translation into an image file: written as before data.channels existed."""
    return result.shape[0] == 3 and target.suffix.lower() not in ARRAY_SUFFIXES


def _warn_skipped(skipped: list[str]) -> None:
    shown = "; ".join(skipped[:5]) + ("; ..." if len(skipped) > 5 else "")
    console.print(
        f"[yellow]warning:[/yellow] skipped {len(skipped)} file(s) that cannot be translated: "
        + escape(shown),
        highlight=False,
    )
