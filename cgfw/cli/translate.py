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
from typing import Any

import click
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn

from cgfw import checkpoint
from cgfw.channels import data_channels
from cgfw.cli.console import console, friendly, out
from cgfw.errors import CgfwError
from cgfw.images import IMAGE_SUFFIXES, BadImage, decode, images_in, to_tensor
from cgfw.layout import RunDir
from cgfw.model import build_network
from cgfw.planes import ARRAY_SUFFIXES, Planes, UnreadableArray, resize_planes, write_planes
from cgfw.plugins import load_plugins
from cgfw.recipe import Resolved, read_toml, validate
from cgfw.registry import Registry
from cgfw.trainer import resolve_device

DIRECTIONS = ("a2b", "b2a")
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


class OneSided(CgfwError):
    """The run's model does not learn the direction asked for."""


@dataclass
class Generator:
    """A generator rebuilt from a run, in eval mode on the CPU, and where it came from."""

    net: nn.Module
    resolved: Resolved
    registry: Registry
    checkpoint: Path
    direction: str
    iteration: int  # of the checkpoint (0 when it does not say)
    network: str = "g_ab"  # the model's name for it (g_ab, g_ba)
    slot: str = "generator"  # the recipe section it is built from
    averaged: bool = False  # the train.ema weights rather than the trained ones

    @property
    def crop_size(self) -> int | None:
        size = getattr(self.resolved.options.get("data"), "crop_size", None)
        return size if isinstance(size, int) else None

    @property
    def channels(self) -> int:
        """The run's data.channels: what the generator takes and gives."""
        return data_channels(self.resolved.options.get("data"))


def _checkpoint_of(source: Path) -> tuple[Path, dict[str, Any] | None]:
    """The checkpoint to read and, for a run directory, the recipe saved beside it."""
    if source.is_dir():
        run = RunDir(source)
        saved = run.recipe
        if not saved.is_file():
            raise CgfwError(
                f"{source}: not a run directory (no recipe.toml); give a run directory made by "
                "`cgfw run` or a checkpoint file (RUN_DIR/checkpoints/latest.pt)"
            )
        try:
            path = checkpoint.latest_in(run.checkpoints)
        except CgfwError:
            raise CgfwError(
                f"{source}: no checkpoint yet in {run.checkpoints}; let the run reach "
                "train.checkpoint_every (or finish) first"
            ) from None
        return path, read_toml(saved)
    if source.is_file():
        return source, None
    raise CgfwError(f"{source}: no such run directory or checkpoint file")


# `--raw` of translate, export and eval: the weights load_generator reads.
raw_option = click.option(
    "--raw",
    is_flag=True,
    help="The trained weights, not their moving average (runs with train.ema only).",
)


def load_generator(source: Path, direction: str, raw: bool = False) -> Generator:
    """Rebuild the `direction` generator of a run directory or checkpoint file, weights loaded.

    A run directory's recipe.toml is used; a bare checkpoint carries its own recipe.
    """
    if direction not in DIRECTIONS:
        raise CgfwError(f"--direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
    path, recipe_data = _checkpoint_of(source)
    state = checkpoint.load(path)
    where = str(RunDir(source).recipe) if recipe_data is not None else f"{path} (recipe)"
    if recipe_data is None:
        recipe_data = state.get("recipe")
        if not isinstance(recipe_data, dict):
            raise CgfwError(
                f"{path}: the checkpoint carries no recipe; give its run directory instead"
            )
    registry = load_plugins().registry
    resolved = validate(recipe_data, registry, where)
    learned = resolved.model_class.directions
    if direction not in learned:
        raise OneSided(
            f"--direction {direction}: model '{resolved.model.name}' learns "
            f"{', '.join(learned) or 'no direction'} only (it is one-sided); use "
            f"--direction {next(iter(learned), 'a2b')}"
        )
    network, slot = learned[direction]
    try:
        weights = state["model"]["networks"][network]
        averaged = not raw and network in (state.get("ema") or {})
        if averaged:  # train.ema: the moving average is what the run is used with
            weights = state["ema"][network]
    except (KeyError, TypeError):
        raise CgfwError(f"{path}: no {network} generator weights in this checkpoint") from None
    net = build_network(resolved, slot)
    checkpoint.refuse_old_conv_biases(path, {network: weights}, {network: net})
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CgfwError(
            f"{path}: the weights do not fit the generator of {where} ({first}); was the "
            "recipe edited after training?"
        ) from None
    net.eval()  # dropout off, batch norm on its running statistics
    iteration = state.get("iteration")
    iteration = iteration if isinstance(iteration, int) else 0
    return Generator(net, resolved, registry, path, direction, iteration, network, slot, averaged)


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


def resize_shorter(image: Image.Image, size: int | None) -> Image.Image:
    """Shorter side to `size`, aspect ratio kept; None keeps the image as it is."""
    new = shorter_side_to(*image.size, size)
    # Bicubic, as the datasets resize for training.
    return image if new is None else image.resize(new, Image.Resampling.BICUBIC)


def resize_planes_shorter(planes: Planes, size: int | None) -> Planes:
    """`resize_shorter` for full-precision planes."""
    new = shorter_side_to(*side_of(planes), size)
    if new is None:
        return planes
    new_w, new_h = new
    return Planes(resize_planes(planes.data, new_h, new_w), planes.dtype)


# What translate reads an input as: an 8-bit Pillow image, or planes at full precision.
Decoded = Image.Image | Planes


def side_of(image: Decoded) -> tuple[int, int]:
    """(width, height), the key images are batched by."""
    if isinstance(image, Image.Image):
        return image.size
    height, width = image.data.shape[-2:]
    return width, height


@torch.no_grad()
def translate_batch(net: nn.Module, batch: Tensor) -> Tensor:
    """Pad (reflect) to a multiple of MULTIPLE, translate, crop back to the input's size."""
    height, width = batch.shape[-2:]
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
        raise CgfwError(f"cannot write {path}: {exc.strerror or exc}") from None


def save(image: Image.Image, path: Path) -> None:
    quality = QUALITY.get(path.suffix.lower())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if quality is None:
            image.save(path)
        else:
            image.save(path, quality=quality)
    except OSError as exc:  # a full disk or a read-only folder ends the run: later writes fail too
        raise CgfwError(f"cannot write {path}: {exc.strerror or exc}") from None


class Translator:
    """Collects decoded images by size and translates them a batch at a time."""

    def __init__(
        self, net: nn.Module, device: torch.device, batch_size: int, side_by_side: bool
    ) -> None:
        self.net, self.device = net, device
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
            results = translate_batch(self.net, batch).cpu()
        except torch.cuda.OutOfMemoryError:
            width, height = size
            raise CgfwError(
                f"out of GPU memory translating {len(group)} image(s) of {width}x{height}; "
                "use a smaller --batch-size or --size, or --device cpu"
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


@click.command()
@click.argument("model", metavar="RUN_DIR|CHECKPOINT", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.argument("output", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option(
    "--direction",
    type=click.Choice(list(DIRECTIONS)),
    default="a2b",
    show_default=True,
    help="a2b runs the A -> B generator (g_ab), b2a the B -> A one (g_ba).",
)
@click.option(
    "--size",
    type=click.IntRange(min=MIN_SIDE),
    metavar="N",
    help="Resize the shorter side to N px (default: the recipe's data.crop_size, else 256).",
)
@click.option(
    "--full-resolution", is_flag=True, help="Translate at the images' own size (no resize)."
)
@click.option("--side-by-side", is_flag=True, help="Write input | output pairs, twice as wide.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    metavar="N",
    show_default=True,
    help="Images of the same size translated at once.",
)
@raw_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@friendly
def translate(
    model: Path,
    input_path: Path,
    output: Path,
    direction: str,
    size: int | None,
    full_resolution: bool,
    side_by_side: bool,
    batch_size: int,
    raw: bool,
    device: str,
) -> None:
    """Translate INPUT (an image, or a folder searched recursively) into OUTPUT (a file, or a
    folder mirroring INPUT's subfolders and file names) with the generator of RUN_DIR (its
    latest checkpoint) or of a CHECKPOINT file.

    Each output is written in the format its name's suffix gives (PNG for a name without one).
    """
    if size is not None and full_resolution:
        raise CgfwError("--size and --full-resolution exclude each other; give one")
    jobs = plan(input_path, output)  # before loading anything: a bad OUTPUT fails fast
    dev = resolve_device(device, "--device")
    generator = load_generator(model, direction, raw)
    if not full_resolution and size is None:
        size = generator.crop_size or DEFAULT_SIZE
    translator = Translator(generator.net.to(dev), dev, batch_size, side_by_side)
    channels = generator.channels
    single = not input_path.is_dir()
    skipped: list[str] = []
    progress = Progress(
        TextColumn("[bold]translate"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task("translate", total=len(jobs))
        for job in jobs:
            try:
                decoded = decode(job.source, channels)
                image: Decoded = (
                    resize_shorter(decoded, size)
                    if isinstance(decoded, Image.Image)
                    else resize_planes_shorter(decoded, size)
                )
            except (BadImage, OSError) as exc:  # OSError: no read permission, vanished file
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                if single:
                    raise CgfwError(f"{job.source}: cannot be translated: {reason}") from None
                skipped.append(f"{job.source} ({reason})")
                progress.advance(task)
                continue
            width, height = side_of(image)
            if min(width, height) < MIN_SIDE:
                reason = f"{width}x{height} is under {MIN_SIDE} px"
                if single:
                    raise CgfwError(f"{job.source}: {reason}; use --size {MIN_SIDE} or more")
                skipped.append(f"{job.source} ({reason})")
                progress.advance(task)
                continue
            progress.advance(task, translator.add(job.target, image))
        progress.advance(task, translator.finish())
    if skipped:
        _warn_skipped(skipped)
    if translator.done == 0:
        raise CgfwError(f"{input_path}: none of its {len(jobs)} image(s) could be translated")
    resolution = "full resolution" if size is None else f"shorter side {size} px"
    where = jobs[0].target if single else output
    out.print(
        f"translated {translator.done} image(s) {direction} ({resolution}"
        f"{', side by side' if side_by_side else ''}) into {where}",
        markup=False,
    )
